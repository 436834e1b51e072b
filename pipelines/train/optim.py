"""AdamW with warm-up and cosine decay, and gradient clipping over mixed meshes.

Parameters live on different meshes: FSDP shards over dp, TP blocks over dp × tp, and the
channel groups of one TP rank over dp only — each TP rank holding *different* groups. The
global gradient norm therefore sums, per (mesh, placements) family, the local squares
over every mesh dimension the family is sharded on, and additionally over the TP ranks for
parameters that exist on one TP rank only; replicated copies are counted once. One small
collective per family, not one per parameter.

AdamW's multi-tensor (`foreach`, CUDA's default) kernels cannot mix plain tensors and
DTensors in one call (the crash of tensor parallelism without FSDP); see
`build_optimizer`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from pipelines.model.init import clean_name
from pipelines.model.layers import never_updated


def _kind(p: Tensor) -> tuple:
    mesh = getattr(p, "device_mesh", None)
    if mesh is None:
        return ("plain",)
    return ("dtensor", id(mesh), tuple(map(str, p.placements)))


def build_optimizer(model: nn.Module, lr: float, weight_decay: float,
                    foreach: bool | None = None) -> torch.optim.AdamW:
    """No weight decay on biases, norms and embeddings (1-D parameters), as in MAE.

    The two groups do not depend on the layout, so optimizer state saved on one (dp, tp)
    loads on any other. Under FSDP every parameter is a DTensor and the multi-tensor
    kernels work; a model mixing plain tensors and DTensors (tensor parallelism without
    FSDP) takes the per-tensor kernels instead of crashing."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and not never_updated(clean_name(name)):
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if any(len({_kind(p)[0] for p in g["params"]}) > 1 for g in groups):
        foreach = False
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), foreach=foreach)


def clear_grads(model: nn.Module) -> None:
    """Free every gradient after a step — through the model, not the optimizer.

    The optimizer holds only the parameters it updates; the never-updated key biases still
    receive a gradient in backward, and `optimizer.zero_grad` would leave those buffers
    alive into the next step (under FSDP about half of a rank's gradient buffers)."""
    model.zero_grad(set_to_none=True)


def lr_at(step: int, base: float, minimum: float, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to `minimum` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def grad_norm(named: Iterable[tuple[str, nn.Parameter]], tp_group: dist.ProcessGroup | None,
              tp_local: tuple[str, ...]) -> Tensor:
    """The global L2 norm of all gradients, whatever their sharding (a float64 scalar)."""
    families: dict[tuple, list[Tensor]] = defaultdict(list)
    meshes: dict[tuple, object] = {}
    for name, p in named:
        g = p.grad
        if g is None:
            continue
        only_here = tp_group is not None and clean_name(name).startswith(tp_local)
        kind = (_kind(g), only_here)
        if hasattr(g, "device_mesh"):
            meshes[kind] = g
            g = g.to_local()
        families[kind].append(g)
    total = torch.zeros((), dtype=torch.float64)
    here: Tensor | None = None  # held by this TP rank only: the others hold other groups
    device = torch.device("cpu")
    for kind, grads in families.items():
        device = grads[0].device
        sq = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) ** 2
                          for g in grads]).sum().to(device)
        ref = meshes.get(kind)
        if ref is not None:
            for dim, placement in enumerate(ref.placements):
                if placement.is_shard():
                    dist.all_reduce(sq, group=ref.device_mesh.get_group(dim))
        if kind[1]:
            here = sq.double() if here is None else here + sq.double()
        else:
            total += sq.double().cpu()
    if tp_group is not None:
        # One reduction on every rank, also one whose own groups have no gradient (frozen
        # while another rank's new channels train): a skipped collective would hang.
        here = torch.zeros((), dtype=torch.float64, device=device) if here is None else here
        dist.all_reduce(here, group=tp_group)
        total += here.cpu()
    return total.sqrt()


def clip_grads(model: nn.Module, max_norm: float, tp_group: dist.ProcessGroup | None = None,
               tp_local: tuple[str, ...] = ()) -> float:
    """Scale gradients so their global norm is at most `max_norm`; returns the norm before.
    Every rank computes the same norm, so replicated parameters stay bit-identical."""
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    norm = float(grad_norm(named, tp_group, tp_local))
    if max_norm > 0 and math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for _, p in named:
            p.grad.mul_(scale)
    return norm
