"""Build a model and lay it out over the (dp, tp) mesh without ever materialising it whole.

The torchtitan order: construct on the meta device (no memory), apply tensor parallelism
(D-CHAG's channel groups, the head-split aggregation, the Megatron ViT), activation
checkpointing, then FSDP over dp with the mixed-precision policy; only then give every
rank memory for its own shards (`to_empty`) and fill them (`init_weights`: identical to
the single-process model for the same seed). A 26B model therefore needs, per rank, its
shard plus the largest single parameter — never the 97 GiB of the whole fp32 model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy

from pipelines.model.config import ModelConfig, preset_config
from pipelines.model.factory import make_model
from pipelines.model.init import init_buffers, init_weights
from pipelines.model.mae import MAE
from pipelines.parallel.checkpointing import apply_activation_checkpointing
from pipelines.parallel.compile import compile_blocks
from pipelines.parallel.fsdp import apply_fsdp
from pipelines.parallel.mixed_precision import cast_for_compute
from pipelines.parallel.tensor_parallel import apply_tensor_parallel
from pipelines.run.config import TrainConfig
from pipelines.train.distributed import RankContext

if TYPE_CHECKING:  # the data module imports zarr, which a GPU bench must not need
    from pipelines.train.data import Artifact


@dataclass(frozen=True)
class Layout:
    """How one rank holds the model: meshes, device, precision and memory savers."""

    tp_mesh: DeviceMesh | None
    dp_mesh: DeviceMesh | None
    device: torch.device
    compute_dtype: torch.dtype = torch.float32
    ac: bool = False  # recompute each transformer block in the backward pass
    ac_channels: bool = False  # recompute the channel stage too
    split_aggregation: bool = True
    fsdp: bool = True  # shard over dp_mesh; without it, bf16 compute by cast_for_compute
    compile: bool = False  # torch.compile each transformer block


def model_config(cfg: TrainConfig, art: Artifact) -> ModelConfig:
    if cfg.new_channels:  # a trained forecaster extended by channels
        from pipelines.train.extend import extended_model

        return extended_model(cfg, art)
    extra = ({"out_channels": len(art.out_index)} if cfg.task == "forecast"
             else {"fill": cfg.fill})
    return preset_config(cfg.preset, art.model_channels, variant=cfg.variant,
                         tree=cfg.tree, groups=cfg.groups, img_size=art.img_size,
                         patch=cfg.patch, channel_impl=cfg.channel_impl, **extra)


def run_model(cfg: TrainConfig, art: Artifact, mcfg: ModelConfig) -> nn.Module:
    """The run's network: the forecaster predicts the artifact's output channels as
    residuals scaled per lead."""
    if cfg.task == "forecast":
        return make_model(mcfg, "forecast", out_index=art.out_index, residual=True,
                          lead_scale=art.lead_scale())
    return make_model(mcfg, "mae")


def compute_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def build_sharded(make: Callable[[], nn.Module], layout: Layout, seed: int | None,
                  materialize: contextlib.AbstractContextManager | None = None) -> nn.Module:
    """`make()` on the meta device, laid out per `layout`, then this rank's shards given
    memory and (unless `seed` is None, as in the memory planner) initialised. The memory
    planner passes a `FakeTensorMode` as `materialize`: the shards are then fake tensors
    that take no memory."""
    with torch.device("meta"):
        model = make()
    if layout.tp_mesh is not None and layout.tp_mesh.size() > 1:
        apply_tensor_parallel(model, layout.tp_mesh, layout.split_aggregation)
    if layout.ac:
        apply_activation_checkpointing(model.encoder.blocks)  # type: ignore[union-attr,arg-type]
        if isinstance(model, MAE):
            apply_activation_checkpointing(model.decoder_blocks)
    if layout.compile:  # after TP and AC, before FSDP (torchtitan's order)
        compile_blocks(model.encoder.blocks)  # type: ignore[union-attr,arg-type]
        if isinstance(model, MAE):
            compile_blocks(model.decoder_blocks)
    model.encoder.checkpoint_channels = layout.ac_channels  # type: ignore[union-attr]
    if layout.fsdp and layout.dp_mesh is not None:
        policy = MixedPrecisionPolicy(param_dtype=layout.compute_dtype,
                                      reduce_dtype=torch.float32)
        apply_fsdp(model, layout.dp_mesh, policy)
    else:
        cast_for_compute(model, layout.compute_dtype)
    with materialize or contextlib.nullcontext():
        model.to_empty(device=layout.device)
        init_buffers(model)
    if seed is not None:
        init_weights(model, seed)
    return model


def build_parallel_model(cfg: TrainConfig, art: Artifact, ctx: RankContext) -> nn.Module:
    mcfg = model_config(cfg, art)
    dtype = compute_dtype(cfg, ctx.device)
    layout = Layout(tp_mesh=ctx.tp_mesh, dp_mesh=ctx.dp_mesh, device=ctx.device,
                    compute_dtype=dtype, ac=cfg.ac, ac_channels=cfg.ac_channels,
                    split_aggregation=cfg.aggregation == "head-split",
                    fsdp=ctx.dp_mesh.size() > 1,
                    compile=cfg.compile)
    return build_sharded(lambda: run_model(cfg, art, mcfg), layout, cfg.seed)
