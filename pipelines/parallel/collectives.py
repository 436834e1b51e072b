"""The two autograd collectives of Megatron-style tensor parallelism.

A head-split layer runs between them: its input is replicated on every tensor-parallel
rank, each rank computes its own heads, and the output projection's partial sums are
added over the ranks.

- `copy_to_tp`: identity forward; backward all-reduces the input gradient (each rank
  only saw the gradient through its own heads).
- `reduce_from_tp`: forward all-reduces the partial outputs; backward passes the (already
  complete, identical) gradient through unchanged.

Under torch's fake process group both are free; their bytes are counted by the bench.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


class _CopyToTP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: dist.ProcessGroup) -> Tensor:  # type: ignore[override]
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class _ReduceFromTP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: dist.ProcessGroup) -> Tensor:  # type: ignore[override]
        out = x.contiguous().clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad, None


def copy_to_tp(x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    return x if group is None else _CopyToTP.apply(x, group)


def reduce_from_tp(x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    return x if group is None else _ReduceFromTP.apply(x, group)
