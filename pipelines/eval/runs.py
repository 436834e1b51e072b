"""Load a trained run for inference in one process, whatever layout it was trained on.

The sharded checkpoint is read into plain, unsharded tensors (DCP reassembles FSDP and
TP shards and every rank's channel groups); nothing is unpickled.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch import nn

from pipelines.errors import DchagError
from pipelines.model.config import ModelConfig
from pipelines.model.forecast import Forecaster
from pipelines.model.mae import MAE
from pipelines.train.checkpoint import checkpoint_step, latest_checkpoint
from pipelines.train.config import TrainConfig, load_run_config


@dataclass
class TrainedRun:
    path: Path
    cfg: TrainConfig
    info: dict  # model.json: model config, channels, normalisation, grid, leads
    mcfg: ModelConfig
    model: nn.Module
    step: int

    @property
    def channels(self) -> list[str]:
        return list(self.info["channel_names"])

    @property
    def out_channels(self) -> list[str]:
        return list(self.info["out_channels"])


def load_run(run: Path, task: str, device: torch.device) -> TrainedRun:
    run = Path(run)
    cfg = load_run_config(run)
    if cfg.task != task:
        want = "`dchag train forecast`" if task == "forecast" else "`dchag pretrain`"
        raise DchagError(f"this is a {cfg.task} run", path=run, fix=f"use a run of {want}")
    info = json.loads((run / "model.json").read_text())
    mcfg = ModelConfig.from_dict(info["model"])
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise DchagError("the run has no checkpoint yet", path=run,
                         fix="train it first (or --resume it to the end)")
    if task == "forecast":
        out_index = [info["channel_names"].index(c) for c in info["out_channels"]]
        model: nn.Module = Forecaster(mcfg, out_index=out_index, residual=True)
    else:
        model = MAE(mcfg)
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # "torch.distributed is disabled …": intended here
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(ckpt), no_dist=True)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return TrainedRun(run, cfg, info, mcfg, model, checkpoint_step(ckpt))
