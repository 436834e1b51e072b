"""Applying D-CHAG's channel split and Megatron tensor parallelism to a plain model.

Kept apart from the model (as torchtitan does): the model code never changes.
- Channel groups: TP rank r owns the G/tp groups [r·G/tp, (r+1)·G/tp), holds only their
  tokenizer and partial-aggregator weights, tokenizes only their channels and runs their
  partial aggregators; one all-gather joins the partials. A sharded checkpoint then holds
  each group once, under the single-process names, so it loads on any tp.
  The pure-TP baseline (`variant="baseline"`) instead tokenizes and aggregates all
  channels on every rank.
- The aggregation over all ranks' inputs — D-CHAG's final cross-attention over the G
  gathered partials, the baseline's cross-attention over all C channel tokens — is split
  by heads (`split_aggregation`, the default, as the D-CHAG authors do): each rank projects
  and attends with heads/tp heads, the output projection's partial sums are all-reduced
  once forward and the input gradient once backward. Replicated on every rank instead, it
  costs the full attention per rank; that form is kept only when asked for, and named in
  every output ("replicated" vs "head-split").
- ViT blocks: q, k, v and fc1 column-parallel, proj and fc2 row-parallel (each rank holds
  heads/tp heads and 1/tp of the MLP), through DTensor's `parallelize_module`.

Everything here works on a model built on the meta device (nothing is materialised).
"""

from __future__ import annotations

from functools import partial

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate, Shard, distribute_tensor
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    parallelize_module,
)

from pipelines.errors import DchagError
from pipelines.model.config import ModelConfig
from pipelines.model.encoder import DCHAGEncoder
from pipelines.model.layers import QueryAttention
from pipelines.parallel.collectives import copy_to_tp, reduce_from_tp
from pipelines.parallel.gather import make_gather

BLOCK_PLAN = {
    # The attention input enters q, k and v as one replicated DTensor, so in the backward
    # pass their three partial input gradients are summed first and all-reduced once
    # (separate q/k/v projections would otherwise cost three all-reduces per block).
    "attn": PrepareModuleInput(input_layouts=(Replicate(),),
                               desired_input_layouts=(Replicate(),), use_local_output=False),
    "attn.q": ColwiseParallel(), "attn.k": ColwiseParallel(), "attn.v": ColwiseParallel(),
    "attn.proj": RowwiseParallel(), "mlp.fc1": ColwiseParallel(), "mlp.fc2": RowwiseParallel(),
}


def owned_groups(n_groups: int, tp: int, rank: int) -> list[int]:
    if n_groups % tp:
        raise DchagError(f"{n_groups} channel groups cannot be split over tp={tp} ranks",
                         fix="choose --groups divisible by --tp (the model keeps G fixed)")
    per = n_groups // tp
    return list(range(rank * per, (rank + 1) * per))


def tp_problem(cfg: ModelConfig, tp: int) -> str | None:
    """Why the model cannot be split over `tp` ranks (heads, MLP, channel groups), or None."""
    if cfg.heads % tp:
        return f"its {cfg.heads} heads cannot be split over --tp {tp}"
    if int(cfg.embed_dim * cfg.mlp_ratio) % tp:
        return f"its MLP width {int(cfg.embed_dim * cfg.mlp_ratio)} is not divisible by --tp {tp}"
    if cfg.variant != "baseline" and cfg.n_groups % tp:
        return f"its {cfg.n_groups} channel groups cannot be split over --tp {tp}"
    return None


def splittable_tp(cfg: ModelConfig, ranks: int) -> list[int]:
    """Tensor-parallel sizes dividing `ranks` that the model can be split over."""
    return [t for t in range(1, ranks + 1) if ranks % t == 0 and tp_problem(cfg, t) is None]


def check_tp(cfg: ModelConfig, tp: int, preset: str | None = None) -> None:
    """Refuse a model that cannot be split over `tp` ranks, naming the preset and the fix."""
    problem = tp_problem(cfg, tp)
    if problem is None:
        return
    name = f"preset {preset!r}" if preset else "the model"
    choices = ", ".join(map(str, splittable_tp(cfg, cfg.heads)))
    more = "; or --groups as a multiple of --tp" if "groups" in problem else \
        "; or a preset with more heads (base: 16, 1b and larger: 32)"
    raise DchagError(f"{name} cannot be split: {problem}",
                     fix=f"choose --tp among {choices}{more}")


AGGREGATION_PLAN = {"k": ColwiseParallel(), "v": ColwiseParallel(), "proj": RowwiseParallel()}
TP_LOCAL_PREFIXES = ("encoder.tokenizers.", "encoder.aggregator.groups.")


def split_by_heads(attn: QueryAttention, tp_mesh: DeviceMesh) -> None:
    """Shard a learned-query attention by heads (its forward reads the local shards)."""
    parallelize_module(attn, tp_mesh, AGGREGATION_PLAN)  # shards the parameters only
    attn.query = nn.Parameter(distribute_tensor(attn.query, tp_mesh, [Shard(1)],
                                                src_data_rank=None))
    group = tp_mesh.get_group()
    attn.enter = partial(copy_to_tp, group=group)
    attn.leave = partial(reduce_from_tp, group=group)


def aggregation_kind(split: bool) -> str:
    return "head-split" if split else "replicated"


def apply_tensor_parallel(model: nn.Module, tp_mesh: DeviceMesh,
                          split_aggregation: bool = True) -> nn.Module:
    """Shard the encoder of `model` (an MAE or Forecaster) over `tp_mesh` in place."""
    encoder: DCHAGEncoder = model.encoder  # type: ignore[assignment]
    tp = tp_mesh.size()
    check_tp(encoder.cfg, tp)
    if encoder.cfg.variant != "baseline":
        owned = owned_groups(encoder.aggregator.n_groups, tp, tp_mesh.get_local_rank())
        for g in range(encoder.aggregator.n_groups):
            if g not in owned:  # another rank's channels: never used here, never held
                del encoder.tokenizers[str(g)]
                del encoder.aggregator.groups[str(g)]
        encoder.local_groups = owned
        encoder.gather_partials = make_gather(tp_mesh.get_group())
    if split_aggregation:
        split_by_heads(encoder.aggregator.full if encoder.cfg.variant == "baseline"
                       else encoder.aggregator.final, tp_mesh)
    for block in encoder.blocks:
        parallelize_module(block, tp_mesh, BLOCK_PLAN)
    return model


def tp_local_names(model: nn.Module, tp: int) -> tuple[str, ...]:
    """Name prefixes of parameters that exist on one TP rank only (its channel groups):
    their gradient norm must be summed over the TP ranks too."""
    if tp == 1 or model.encoder.cfg.variant == "baseline":  # type: ignore[union-attr]
        return ()
    return TP_LOCAL_PREFIXES
