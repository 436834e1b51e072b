"""AdamW with warm-up and cosine decay, and gradient clipping over mixed meshes.

Parameters live on different meshes (FSDP shards over dp, TP blocks over dp × tp, the
channel groups of one TP rank over dp only), so the global gradient norm is assembled per
(mesh, placement) family: one small collective each, not one per parameter.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.tensor import DTensor


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """No weight decay on biases, norms and embeddings (1-D parameters), as in MAE."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def lr_at(step: int, base: float, minimum: float, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to `minimum` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def grad_norm(params: Iterable[nn.Parameter]) -> Tensor:
    """The global L2 norm of all gradients, whatever their sharding.

    Per family: the local sum of squares, summed over the mesh dimensions the family is
    sharded on (not over replicated ones, which hold copies)."""
    families: dict[tuple, list[Tensor]] = defaultdict(list)
    meshes = {}
    total = torch.zeros((), dtype=torch.float64)
    for p in params:
        if p.grad is None:
            continue
        g = p.grad
        if isinstance(g, DTensor):
            key = (id(g.device_mesh), tuple(g.placements))
            meshes[key] = g.device_mesh
            families[key].append(g.to_local())
        else:
            total += torch.linalg.vector_norm(g, dtype=torch.float32).double().cpu() ** 2
    for key, grads in families.items():
        sq = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) ** 2
                          for g in grads]).sum()
        mesh = meshes[key]
        for dim, placement in enumerate(key[1]):
            if placement.is_shard():
                dist.all_reduce(sq, group=mesh.get_group(dim))
        total += sq.double().cpu()
    return total.sqrt()


def clip_grads(params: list[nn.Parameter], max_norm: float) -> float:
    """Scale gradients so their global norm is at most `max_norm`; returns the norm before."""
    norm = float(grad_norm(params))
    if max_norm > 0 and math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
    return norm
