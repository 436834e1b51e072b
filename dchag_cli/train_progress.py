"""What every training rank runs, and how rank 0 shows its progress: a Rich bar on a
terminal, one flushed line per logged step in a batch job's log."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dchag_cli.console import PlainLines, err, human_bytes, show_notes
from pipelines.run.config import TrainConfig

if TYPE_CHECKING:
    from pipelines.train.loop import TrainResult


def run_rank(cfg: TrainConfig) -> TrainResult:
    """What every rank runs (module level, so the launcher can start it in new processes)."""
    from pipelines.train.loop import train

    if os.environ.get("RANK", "0") != "0":
        return train(cfg)
    show_notes()
    if not err.is_terminal:  # a batch job's log: one plain line per --log-every steps
        return train(cfg, PlainTrainProgress())
    with _RichTrainProgress() as progress:
        return train(cfg, progress)


def describe_status(status: dict[str, float]) -> str:
    parts = [f"loss {status['loss']:.4g}" if "loss" in status else "",
             f"val {status['val_loss']:.4g}" if status.get("val_loss") is not None else "",
             f"{status['samples_per_s']:.1f} samples/s" if "samples_per_s" in status else "",
             f"mem {human_bytes(status['peak_mem_bytes'])}" if "peak_mem_bytes" in status
             else ""]
    return "  ".join(p for p in parts if p)


class PlainTrainProgress:
    """Training progress for logs: `step 20/100 (20%)  loss …  val …  samples/s  mem
    (largest rank's peak)  elapsed  ETA`, one flushed line per logged step."""

    def __init__(self) -> None:
        self._lines = PlainLines()

    def start(self, total: int, done: int) -> None:
        self._lines.start(total, "training steps", done)
        err.print(f"training from step {done} to {total}; a line every --log-every steps",
                  markup=False)

    def update(self, done: int, status: dict[str, float]) -> None:
        self._lines.update(done, describe_status(status) or "logged")


class _RichTrainProgress:
    def __init__(self) -> None:
        self._bar = Progress(TextColumn("step"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                             console=err)
        self._task: Any = None

    def __enter__(self) -> _RichTrainProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def start(self, total: int, done: int) -> None:
        self._task = self._bar.add_task("train", total=total, completed=done, status="")

    def update(self, done: int, status: dict[str, float]) -> None:
        self._bar.update(self._task, completed=done, status=describe_status(status))
