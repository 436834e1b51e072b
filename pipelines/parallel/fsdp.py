"""Fully sharded data parallel over the dp dimension, composed with tensor parallelism.

Order as in torchtitan: tensor parallelism first, then `fully_shard` per ViT block and
once at the root, so each block's parameters are gathered just before it runs and freed
after. Gradients are averaged over the dp ranks. The mixed-precision policy casts the
gathered parameters (bf16 compute on GPUs) while master weights, optimizer state and the
gradient reduction stay in fp32.
"""

from __future__ import annotations

import warnings

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


def apply_fsdp(model: nn.Module, dp_mesh: DeviceMesh,
               policy: MixedPrecisionPolicy | None = None) -> nn.Module:
    # Blocks return views (checkpointed outputs, MAE's reconstruction); nothing modifies
    # them in place, which is the only case the warning is about.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view")
    policy = policy or MixedPrecisionPolicy()
    blocks = list(model.encoder.blocks)  # type: ignore[union-attr]
    blocks += list(getattr(model, "decoder_blocks", []))
    for block in blocks:
        fully_shard(block, mesh=dp_mesh, mp_policy=policy)
    fully_shard(model, mesh=dp_mesh, mp_policy=policy)
    return model
