"""bf16 compute for a model that FSDP does not wrap (one data-parallel rank).

FSDP's mixed-precision policy casts each unit's parameters (a ViT block; the root's
remaining ones) to the compute dtype just before the unit runs, and the inputs at the
root. With one data-parallel rank there is nothing to shard, and wrapping anyway costs
memory: FSDP2 keeps low-precision gradient copies and a reduce buffer beside the fp32
gradient it hands the optimizer (the memory planner counted 1.96× the fp32 gradients at
1b / 512 channels / tp 8). This module gives the same arithmetic without FSDP: forward
hooks shadow a unit's parameters with compute-dtype copies while it runs (the copy is
differentiable, so each fp32 parameter receives an fp32 gradient), and the root casts
floating-point inputs. A run computes the same way at dp 1 as at dp > 1.
`torch.autocast` would not: it keeps norms, residual streams and channel tokens in fp32,
which costs more activation memory than the gradient copies it saves (the planner: the
token-keeping baseline at 26B went from 129 to 218 GiB).

Lifetimes follow FSDP's: a block's copies exist while it runs, and again while activation
checkpointing recomputes it (its hooks sit on the recomputed module); the root's copies
stay until the backward pass ends, because a checkpointed channel stage recomputes with
them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd import Variable
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper


def _owned(members) -> list[tuple[nn.Module, str]]:
    return [(m, name) for m in members for name, p in m._parameters.items()
            if p is not None and p.is_floating_point()]


def _shadow(owned: list[tuple[nn.Module, str]], dtype: torch.dtype) -> None:
    # A module may read a child's weight without calling the child, so a unit is cast
    # as a whole. An instance attribute wins over nn.Module's lookup of _parameters.
    for module, name in owned:
        module.__dict__[name] = module._parameters[name].to(dtype)


def _unshadow(owned: list[tuple[nn.Module, str]]) -> None:
    for module, name in owned:
        module.__dict__.pop(name, None)


def _cast_block(block: nn.Module, dtype: torch.dtype) -> None:
    if isinstance(block, CheckpointWrapper):  # hooks where the recomputation calls
        block = block._checkpoint_wrapped_module
    owned = _owned(block.modules())
    block.register_forward_pre_hook(lambda _m, _a: _shadow(owned, dtype))
    block.register_forward_hook(lambda _m, _a, _o: _unshadow(owned), always_call=True)


def _tensors(output: object) -> list[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    return []


def _cast_root(model: nn.Module, members, dtype: torch.dtype) -> None:
    owned = _owned(members)

    def before(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        _shadow(owned, dtype)

        def cast(v: object) -> object:
            return v.to(dtype) if isinstance(v, Tensor) and v.is_floating_point() else v
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    def after(_module: nn.Module, _args: tuple, output: object) -> None:
        needs_grad = [t for t in _tensors(output) if t.requires_grad]
        if not needs_grad:  # inference, or the forward raised
            _unshadow(owned)
            return
        queued: list[bool] = []

        def at_backward(_grad: Tensor) -> None:
            if not queued:  # once per backward, at its end (FSDP's final callback)
                queued.append(True)
                Variable._execution_engine.queue_callback(lambda: _unshadow(owned))
        for t in needs_grad:
            t.register_hook(at_backward)

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, always_call=True)


def cast_for_compute(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Compute in `dtype` with fp32 parameters, gradients and optimizer state (FSDP's
    mixed-precision policy and units, unsharded); fp32 leaves `model` unchanged.
    Parameter names (checkpoints, TP plans) are untouched."""
    if dtype == torch.float32:
        return model
    blocks = [*model.encoder.blocks, *getattr(model, "decoder_blocks", [])]  # type: ignore[union-attr]
    for block in blocks:
        _cast_block(block, dtype)
    inner = {id(m) for block in blocks for m in block.modules()}
    _cast_root(model, (m for m in model.modules() if id(m) not in inner), dtype)
    return model
