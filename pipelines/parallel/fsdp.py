"""Fully sharded data parallel over the dp dimension, composed with tensor parallelism.

Order as in torchtitan: tensor parallelism first, then `fully_shard` per ViT block and
once at the root, so each block's parameters are gathered just before it runs and freed
after. Gradients are averaged over the dp ranks.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard


def apply_fsdp(model: nn.Module, dp_mesh: DeviceMesh) -> nn.Module:
    for block in model.encoder.blocks:  # type: ignore[union-attr]
        fully_shard(block, mesh=dp_mesh)
    fully_shard(model, mesh=dp_mesh)
    return model
