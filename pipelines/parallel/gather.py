"""The one all-gather of D-CHAG, with the backward the paper describes.

After the gather, every tensor-parallel rank runs the same final aggregation and ViT on
the same data, so the gradient arriving at the gathered partials is already complete and
identical on every rank: each rank keeps the slice of its own groups, with no
communication. `torch.distributed.nn.functional.all_gather` (and the functional
collectives' autograd gather) instead *sums* the upstream gradients of all ranks, which
would multiply the partial-aggregation gradients by tp.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


class GatherPartials(torch.autograd.Function):
    """(B, L, g, D) local partials → (B, L, g·tp, D), rank r's groups at [r·g, (r+1)·g)."""

    @staticmethod
    def forward(ctx, local: Tensor, group: dist.ProcessGroup) -> Tensor:  # type: ignore[override]
        world = dist.get_world_size(group)
        rank = dist.get_rank(group)
        ctx.slice = (rank * local.shape[2], (rank + 1) * local.shape[2])
        front = local.permute(2, 0, 1, 3).contiguous()  # (g, B, L, D): gather along dim 0
        out = torch.empty((world * front.shape[0], *front.shape[1:]), dtype=front.dtype,
                          device=front.device)
        all_gather_flat(out, front, group)
        return out.permute(1, 2, 0, 3)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        lo, hi = ctx.slice
        return grad[:, :, lo:hi].contiguous(), None


def all_gather_flat(out: Tensor, local: Tensor, group: dist.ProcessGroup | None = None) -> None:
    """Gather equal-sized tensors along dim 0: `all_gather_single` where torch has it
    (2.13+, where `all_gather_into_tensor` is deprecated), else `all_gather_into_tensor`."""
    collective = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    collective(out, local, group=group)


def make_gather(group: dist.ProcessGroup):
    """The `gather_partials` hook of `DCHAGEncoder` for a tensor-parallel group."""

    def gather(partials: Tensor) -> Tensor:
        if torch.is_grad_enabled() and not partials.requires_grad:
            # This rank's groups are frozen while another rank's train (new channels):
            # the backward through the shared layers holds collectives, so it must run
            # here too, or the ranks would wait on each other forever.
            partials = partials.detach().requires_grad_()
        return GatherPartials.apply(partials, group)

    return gather
