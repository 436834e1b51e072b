"""Activation checkpointing per transformer block (`--ac`).

Each block keeps only its input for the backward pass and recomputes its activations
there: activation memory drops from O(depth · block activations) to O(depth · tokens · D)
plus one block's worth, for about one extra forward of compute. Applied after tensor
parallelism and before FSDP, as torchtitan orders them; the wrapper's state-dict hooks
keep parameter names unchanged, so checkpoints load with or without `--ac`.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper


def apply_activation_checkpointing(blocks: nn.ModuleList) -> None:
    for i, block in enumerate(blocks):
        blocks[i] = checkpoint_wrapper(block, preserve_rng_state=False)
