"""Experiment trackers: the records `metrics.jsonl` gets, sent to other tools as well.

`metrics.jsonl` (and `metrics.zarr`) is always written; `--logger NAME` adds a tracker.
A tracker is anything with `log(record)` and `close()`, registered in `TRACKERS` by name,
so an MLflow or W&B adapter is one class more. Trackers run on global rank 0 only and
must work offline: nothing here may need a network.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

from pipelines.errors import DchagError
from pipelines.extras import require
from pipelines.run.config import LOGGERS

# The scalar records of `metrics.jsonl` that a tracker receives, under the same names.
TRACKED = ("loss", "val_loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s",
           "tflops_per_rank", "mfu")


class Tracker(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class TensorBoardTracker:
    """Event files in `RUN/tensorboard` (`tensorboard --logdir RUN`). A resumed run purges
    the events after its checkpoint, as `metrics.jsonl` drops its records, so the curve
    continues unbroken."""

    def __init__(self, run: Path, resume_step: int) -> None:
        check_tracker("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run) / "tensorboard"
        self._writer = SummaryWriter(str(self.dir), purge_step=resume_step + 1)

    def log(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        for name in TRACKED:
            value = record.get(name)
            if value is not None and math.isfinite(float(value)):
                self._writer.add_scalar(name, float(value), step)
        if record.get("peak_mem_bytes"):
            self._writer.add_scalar("peak_mem_bytes_max_rank",
                                    float(max(record["peak_mem_bytes"])), step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


TRACKERS: dict[str, type] = {"tensorboard": TensorBoardTracker}


def check_tracker(name: str) -> None:
    """Refuse a tracker that cannot start before any rank is launched."""
    if name == "tensorboard":
        require("tensorboard", "--logger tensorboard", "tensorboard")


def open_tracker(name: str, run: Path, resume_step: int) -> Tracker | None:
    if name == "none":
        return None
    if name not in TRACKERS:
        raise DchagError(f"--logger {name!r}", fix=f"choose one of {', '.join(LOGGERS)}")
    return TRACKERS[name](run, resume_step)
