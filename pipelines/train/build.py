"""Build the model of a run and lay it out over the (dp, tp) mesh.

Order as in torchtitan: tensor parallelism (D-CHAG's channel groups and the Megatron ViT),
then activation checkpointing, then FSDP over dp with the mixed-precision policy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.fsdp import MixedPrecisionPolicy

from pipelines.model.config import ModelConfig, preset_config
from pipelines.model.forecast import Forecaster
from pipelines.model.mae import MAE
from pipelines.parallel.checkpointing import apply_activation_checkpointing
from pipelines.parallel.fsdp import apply_fsdp
from pipelines.parallel.tensor_parallel import apply_tensor_parallel
from pipelines.train.config import TrainConfig
from pipelines.train.data import Artifact
from pipelines.train.distributed import RankContext


def model_config(cfg: TrainConfig, art: Artifact) -> ModelConfig:
    extra = {"out_channels": len(art.out_index)} if cfg.task == "forecast" else {}
    return preset_config(cfg.preset, len(art.channel_names), variant=cfg.variant,
                         tree=cfg.tree, groups=cfg.groups, img_size=art.img_size,
                         patch=cfg.patch, **extra)


def make_model(cfg: TrainConfig, art: Artifact, mcfg: ModelConfig) -> nn.Module:
    if cfg.task == "forecast":
        return Forecaster(mcfg, out_index=art.out_index, residual=True)
    return MAE(mcfg)


def compute_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def build_parallel_model(cfg: TrainConfig, art: Artifact, ctx: RankContext) -> nn.Module:
    """The same seed builds the same weights on every rank; then each keeps its part."""
    mcfg = model_config(cfg, art)
    torch.manual_seed(cfg.seed)
    with torch.device(ctx.device):
        model = make_model(cfg, art, mcfg)
    if ctx.tp_mesh.size() > 1:
        apply_tensor_parallel(model, ctx.tp_mesh)
    if cfg.ac:
        apply_activation_checkpointing(model.encoder.blocks)  # type: ignore[union-attr,arg-type]
        if isinstance(model, MAE):
            apply_activation_checkpointing(model.decoder_blocks)
    dtype = compute_dtype(cfg, ctx.device)
    if ctx.world > 1 or dtype != torch.float32:
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        apply_fsdp(model, ctx.dp_mesh, policy)
    return model
