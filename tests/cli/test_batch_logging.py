"""Long commands written to a log file (`> log 2>&1`, as in SLURM jobs) show progress lines,
and `--logger tensorboard` records what `metrics.jsonl` records."""

from __future__ import annotations

import re

import pytest

from dchag_cli.console import PlainLines, err
from pipelines.errors import DchagError
from pipelines.run.records import read_metrics
from tests.data.test_transactions import dchag

TRAIN = ["train", "forecast", "--lead", "6h", "--workers", "0", "--batch-size", "2",
         "--log-every", "2", "--val-every", "4", "--ckpt-every", "8", "--steps", "8"]
LINE = re.compile(r"^training steps: (\d+)/8 .* loss [\d.e-]+ .* samples/s +mem [\d.]+ \w+B")


def test_training_into_a_log_file_prints_a_line_per_logged_step(tmp_path, sample_era5_zarr):
    run = tmp_path / "run"
    r = dchag(*TRAIN, "--data", str(sample_era5_zarr), "--out", str(run),
              "--logger", "tensorboard")
    assert r.returncode == 0, r.stderr
    steps = [int(m.group(1)) for m in map(LINE.match, r.stderr.splitlines()) if m]
    assert steps == [2, 4, 6, 8], r.stderr
    assert "ETA" in r.stderr and "val " in r.stderr

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = read_metrics(run)
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [r["step"] for r in logged if "loss" in r]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in logged if "loss" in r],
                                                   rel=1e-6)
    assert [e.step for e in events.Scalars("val_loss")] == [4, 8]
    assert "peak_mem_bytes_max_rank" in events.Tags()["scalars"]


def test_prep_into_a_log_file_prints_progress_lines(tmp_path):
    from tests.conftest import REPO

    r = dchag("prep", "era5", str(REPO / "sample_data" / "era5"), "--preset", "sample-14",
              "--out", str(tmp_path / "e.zarr"), "--log-every", "8", "--workers", "1")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("regridding")]
    assert lines and lines[-1].endswith(tuple("0123456789s")) and "32/32  (100%)" in lines[-1]
    assert "prep era5" in r.stdout and "…" not in r.stdout  # the table is not cut short


def test_plain_lines_come_every_n_units_and_at_least_once_a_minute(monkeypatch):
    printed: list[str] = []
    monkeypatch.setattr(err, "print", lambda text, **kw: printed.append(text))
    now = [0.0]
    lines = PlainLines(every=10, clock=lambda: now[0])
    lines.start(100, "work")
    for _ in range(25):
        now[0] += 1.0
        lines.advance()
    assert [p.split("  ")[0] for p in printed] == ["work: 10/100", "work: 20/100"]
    assert "ETA 1m30s" in printed[0]  # 10 units in 10 s, 90 to go
    now[0] += PlainLines.MAX_SILENCE_S
    lines.advance()
    assert printed[-1].startswith("work: 26/100")


def test_a_missing_tracker_is_refused_before_any_rank_starts(monkeypatch):
    import importlib.util

    from pipelines.train import trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(DchagError, match=r"dchag\[tensorboard\]"):
        trackers.check_tracker("tensorboard")
    with pytest.raises(DchagError, match="choose one of none, tensorboard"):
        trackers.open_tracker("mlflow", None, 0)  # type: ignore[arg-type]
