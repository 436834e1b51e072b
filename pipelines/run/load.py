"""Load a trained run for inference in one process, whatever layout it was trained on.

The sharded checkpoint is read into plain, unsharded tensors (DCP reassembles FSDP and
TP shards and every rank's channel groups) through `safe_checkpoint`: nothing is unpickled
but DCP's own metadata, every value is loaded with `weights_only=True`. A model file of
`dchag export model` (safetensors, data only) is read in place of a run folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import nn

from pipelines.errors import DchagError
from pipelines.model.config import ModelConfig
from pipelines.model.factory import make_model
from pipelines.model_header import is_model_file
from pipelines.notes import note
from pipelines.run.channel_match import match_channels
from pipelines.run.checkpoint import checkpoint_step, intact_checkpoint
from pipelines.run.config import TrainConfig, load_run_config
from pipelines.run.model_file import load_tensors, open_model_file
from pipelines.run.safe_checkpoint import load_state
from pipelines.run.spectral_prior import attach_spectral_prior
from pipelines.run.tendency import normalised_scale, table_from_json


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

    @property
    def forcings(self) -> list[str]:
        """Computed inputs after the channels (none in runs older than forcings)."""
        return list(self.info.get("forcings") or [])


def run_files(run: Path) -> list[Path]:
    """What inference reads from a run folder (outputs may go beside them, not over them),
    or the model file standing in for one."""
    run = Path(run)
    if is_model_file(run):
        return [run]
    return [run / "checkpoints", run / "model.json", run / "config.json"]


def _wrong_task(cfg: TrainConfig, task: str, path: Path) -> DchagError:
    want = "`dchag train forecast`" if task == "forecast" else "`dchag pretrain`"
    return DchagError(f"this is a {cfg.task} run", path=path, fix=f"use a run of {want}")


def _build(task: str, info: dict, cfg: TrainConfig) -> tuple[ModelConfig, nn.Module]:
    mcfg = ModelConfig.from_dict(info["model"])
    if task == "forecast":
        out_index = [info["channel_names"].index(c) for c in info["out_channels"]]
        std = np.asarray(info["std"], np.float64)[out_index]
        scale = normalised_scale(table_from_json(info.get("tendency_std")), std)
        return mcfg, make_model(mcfg, "forecast", out_index=out_index, residual=True,
                                lead_scale=scale)
    model = make_model(mcfg, "mae")
    attach_spectral_prior(model, info, cfg.channel_dropout)
    return mcfg, model


def load_model_file(path: Path, task: str, device: torch.device) -> TrainedRun:
    """A model exported by `dchag export model`: config and weights from one file."""
    found = open_model_file(path)
    cfg = TrainConfig.from_saved(found.config, source=str(path))
    if cfg.task != task:
        raise _wrong_task(cfg, task, path)
    mcfg, model = _build(task, found.info, cfg)
    model.load_state_dict(load_tensors(path, model.state_dict()))
    check_finite(model, path)
    model.to(device).eval()
    return TrainedRun(path, cfg, found.info, mcfg, model, found.step)


def check_finite(model: nn.Module, path: Path) -> None:
    """Weights with NaN or inf would score NaN everywhere: refuse them by name."""
    bad = [k for k, v in model.state_dict().items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise DchagError(f"{len(bad)} weight tensor(s) hold NaN or inf (e.g. {bad[0]})",
                         path=path, fix="use an earlier checkpoint of the run, or train "
                         "again with a lower --lr")


def load_run(run: Path, task: str, device: torch.device) -> TrainedRun:
    """A run folder's newest intact checkpoint, or a model file, ready for inference."""
    run = Path(run)
    if is_model_file(run):
        return load_model_file(run, task, device)
    cfg = load_run_config(run)
    if cfg.task != task:
        raise _wrong_task(cfg, task, run)
    try:
        info = json.loads((run / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise DchagError("cannot read model.json", path=run,
                         fix="point --run at a folder written by `dchag pretrain` or "
                         "`dchag train`") from exc
    ckpt, skipped = intact_checkpoint(run)
    for why in skipped:
        note(f"{why}; using an earlier checkpoint")
    if ckpt is None:
        raise DchagError("the run has no intact checkpoint" if skipped else
                         "the run has no checkpoint yet", path=run,
                         fix="train it first (or --resume it to the end)")
    mcfg, model = _build(task, info, cfg)
    state = {"model": model.state_dict()}
    load_state(state, ckpt, no_dist=True, allow_partial=True)
    model.load_state_dict(state["model"])
    check_finite(model, ckpt)
    model.to(device).eval()
    return TrainedRun(run, cfg, info, mcfg, model, checkpoint_step(ckpt))


def check_droppable(run: TrainedRun, drop: list[str]) -> list[str]:
    """`--drop-channels`: input channels of the run, not all of them."""
    unknown = [c for c in drop if c not in run.channels]
    if unknown:
        raise DchagError(f"--drop-channels {', '.join(unknown)}: not an input channel of the "
                         "run", path=run.path, fix=f"choose among {', '.join(run.channels)}")
    if len(set(drop)) >= len(run.channels):
        raise DchagError("--drop-channels would leave the model no input channel",
                         path=run.path)
    return list(dict.fromkeys(drop))


def check_compatible(run: TrainedRun, group: zarr.Group, data: Path) -> list[int]:
    """Positions of the run's channels in the artifact; refuses another grid or channels."""
    match = match_channels(run.channels, [str(n) for n in group.attrs["channels"]])
    if match.missing:
        raise DchagError(f"the run's channels are not all in the data (missing "
                         f"{', '.join(match.missing[:5])})", path=data,
                         fix="evaluate on an artifact prepared with the run's channels")
    grid = run.info.get("grid")
    if grid is not None and group.attrs.get("grid") != grid:
        raise DchagError(f"grid {group.attrs.get('grid')} differs from the run's {grid}",
                         path=data, fix="prepare the data on the run's grid")
    for text in match.notes():
        note(text)
    return match.index
