"""Resolve a run's configuration from defaults, a config file, a resumed run and flags,
and check it before any worker starts (a bad flag fails in a second, not after launch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import zarr

from pipelines.errors import DchagError
from pipelines.model.config import ModelConfig
from pipelines.parallel.tensor_parallel import check_tp
from pipelines.train.build import model_config
from pipelines.train.checkpoint import latest_checkpoint
from pipelines.train.config import (
    TrainConfig,
    check_same_model,
    load_run_config,
    read_config_file,
    save_config,
)
from pipelines.train.data import Artifact, describe_artifact
from pipelines.train.distributed import check_devices

# Model fields the encoder's weights depend on (what `--init` must agree on).
ENCODER_FIELDS = ("channels", "img_size", "patch", "embed_dim", "depth", "heads", "mlp_ratio",
                  "variant", "tree", "tree_fanout", "groups")


def resolve(task: str, flags: dict[str, Any], config_file: Path | None,
            resume: Path | None) -> TrainConfig:
    settings: dict[str, Any] = {}
    if resume is not None:
        saved = load_run_config(resume)
        settings.update(saved.to_dict(), stop_at=None)
    if config_file is not None:
        settings.update(read_config_file(config_file))
    settings.update({k: v for k, v in flags.items() if v is not None})
    settings["task"] = task
    if resume is not None:
        settings["out"] = str(resume)
    if not settings.get("data"):
        raise DchagError("no training data given", fix="pass --data era5.zarr or appl.zarr")
    cfg = TrainConfig.from_dict(settings)
    if resume is not None:
        check_same_model(cfg, saved, "the run being resumed", resume)
    return cfg


def prepare(cfg: TrainConfig, *, resume: bool, overwrite: bool
            ) -> tuple[Artifact, ModelConfig]:
    """Validate everything a worker will need; returns the artifact and model config."""
    check_devices(cfg.gpus)
    art = describe_artifact(Path(cfg.data), cfg)
    mcfg = model_config(cfg, art)
    check_tp(mcfg, cfg.tp_size)
    if cfg.init is not None:
        check_init(Path(cfg.init), mcfg, art)
    run = Path(cfg.out)
    if resume:
        saved = json.loads((run / "model.json").read_text())
        if saved["channel_names"] != art.channel_names:
            raise DchagError("the data's channels differ from the run's", path=cfg.data)
    elif run.exists() and any(run.iterdir()):
        if not overwrite:
            raise DchagError("the run folder already exists", path=run,
                             fix="--resume it, pass --overwrite, or choose another --out")
        shutil.rmtree(run)
    return art, mcfg


def check_init(init: Path, mcfg: ModelConfig, art: Artifact) -> None:
    if latest_checkpoint(init) is None:
        raise DchagError("no checkpoint to initialise from", path=init,
                         fix="point --init at a finished `dchag pretrain` run")
    saved = json.loads((init / "model.json").read_text())
    diffs = [f"{k}: {saved['model'][k]!r} ≠ {mcfg.to_dict()[k]!r}" for k in ENCODER_FIELDS
             if saved["model"][k] != mcfg.to_dict()[k]]
    if saved["channel_names"] != art.channel_names:
        diffs.append("channel names")
    if diffs:
        raise DchagError(f"the pretrained encoder differs ({'; '.join(diffs)})", path=init,
                         fix="fine-tune with the pretraining run's --preset, --variant, "
                         "--tree, --groups, --patch and channels")


def create_run(cfg: TrainConfig, art: Artifact, mcfg: ModelConfig) -> Path:
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run)
    # What inference needs besides the weights: the training normalisation and grid.
    model = {"model": mcfg.to_dict(), "channel_names": art.channel_names,
             "out_channels": [art.channel_names[i] for i in art.out_index], "kind": art.kind,
             "mean": art.mean.tolist(), "std": art.std.tolist(),
             "data": str(Path(cfg.data).resolve()),
             "grid": zarr.open_group(str(art.path), mode="r").attrs.get("grid")}
    (run / "model.json").write_text(json.dumps(model, indent=2))
    return run
