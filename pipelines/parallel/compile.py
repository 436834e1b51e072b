"""`--compile`: torch.compile per transformer block, the torchtitan way.

Each block's `forward` is compiled in place (not wrapped in an `OptimizedModule`), so
parameter names, and therefore checkpoints, are the same with and without `--compile`;
the hooks FSDP and activation checkpointing put around a block stay outside the compiled
region. Blocks of one stack are identical in structure, so torch compiles one graph and
reuses it for every block (parameters are graph inputs). The channel stage stays eager: it
holds D-CHAG's all-gather and the per-rank group slicing, where a compiled graph would
break anyway, and its exact fused/folded forms are already single large matmuls.
"""

from __future__ import annotations

import torch
from torch import nn


def compile_blocks(blocks: nn.ModuleList) -> None:
    """Compile the forward of every block (or of the block inside its checkpoint wrapper:
    the recomputation in the backward pass then runs the compiled code too)."""
    for block in blocks:
        inner = getattr(block, "_checkpoint_wrapped_module", block)
        inner.forward = torch.compile(inner.forward)  # type: ignore[method-assign]
