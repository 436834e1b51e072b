"""A training run from a resolved config to a result: the run folder locked, made (or
resumed), the ranks launched, and on failure nothing half-made left behind — a run that
never wrote a checkpoint is removed, an interrupted one says how to continue it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.errors import Interrupted
from pipelines.locks import write_lock
from pipelines.notes import note
from pipelines.run.checkpoint import clean_partials, latest_checkpoint
from pipelines.run.config import TrainConfig


def note_cpu_ranks(ranks: int) -> None:
    import torch

    cores = os.cpu_count() or 1
    if not torch.cuda.is_available() and ranks > cores:
        note(f"{ranks} gloo ranks on {cores} CPU cores: they take turns, so this is slow — "
             "fine for checking a layout, not for training")


def train_in_run_folder(cfg: TrainConfig, art: Any, mcfg: Any, rank: Callable, *,
                        resuming: bool, overwrite: bool, config_file: Path | None,
                        on_start: Callable[[], None] = lambda: None) -> Any:
    """Launch `rank` on cfg.gpus ranks in the run folder, held under its lock."""
    from pipelines.train.distributed import launch
    from pipelines.train.resolve import create_run

    run = Path(cfg.out)
    note_cpu_ranks(cfg.gpus)
    run.parent.mkdir(parents=True, exist_ok=True)
    with write_lock(run):
        if not resuming:
            create_run(cfg, art, mcfg, overwrite, config_file)
        clean_partials(run)
        on_start()
        try:
            return launch(rank, cfg, cfg.gpus)
        except Interrupted as exc:  # a signal: the ranks stopped at a step boundary
            newest = latest_checkpoint(run)
            if newest is None and not resuming:
                shutil.rmtree(run, ignore_errors=True)  # nothing worth keeping
                raise
            command = "pretrain" if cfg.task == "mae" else "train forecast"
            name = newest.name if newest is not None else "none"
            raise Interrupted(exc.signum, f"stopped; newest checkpoint {name} in {run} — "
                              f"`dchag {command} --resume {run}` continues") from None
        except BaseException:
            if not resuming and latest_checkpoint(run) is None:
                shutil.rmtree(run, ignore_errors=True)  # nothing worth keeping
            raise
