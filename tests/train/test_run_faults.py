"""Training survives a killed or full-disk checkpoint, and one run has one writer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.run.records import read_metrics
from tests.data.test_transactions import dchag

ARGS = ["train", "forecast", "--lead", "6h,1d", "--workers", "0", "--batch-size", "2",
        "--log-every", "2", "--val-every", "4", "--ckpt-every", "4", "--steps", "8"]


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run)]


@pytest.mark.slow
def test_kill_9_mid_checkpoint_then_resume_cleans_up_and_continues(tmp_path, sample_era5_zarr):
    run = tmp_path / "run"
    r = dchag(*ARGS, "--data", str(sample_era5_zarr), "--out", str(run), "--stop-at", "4")
    assert r.returncode == 0, r.stderr
    r = dchag("train", "forecast", "--resume", str(run),
              fault="checkpoint:shards-written")
    assert r.returncode == -9
    ckpts = run / "checkpoints"
    assert (ckpts / "step_00000008.partial").is_dir()
    r = dchag("train", "forecast", "--resume", str(run))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_00000004",
                                                       "step_00000008"]
    assert _steps(run) == [2, 4, 6, 8]


@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path,
                                                                       sample_era5_zarr):
    run = tmp_path / "run"
    r = dchag(*ARGS, "--data", str(sample_era5_zarr), "--out", str(run), "--stop-at", "4")
    assert r.returncode == 0, r.stderr
    r = dchag("train", "forecast", "--resume", str(run),
              fault="checkpoint:shards-written=enospc")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "Traceback" not in r.stderr
    assert "out of disk space" in last and "step_00000004 is intact" in last
    assert "step_00000008.partial" in last
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest",
                                                                       "step_00000004"]


@pytest.mark.slow
def test_a_run_being_trained_cannot_be_resumed_or_replaced(tmp_path, sample_era5_zarr):
    run = tmp_path / "run"
    env = {**os.environ, "DCHAG_FAULT": "checkpoint:shards-written=stall",
           "PYTHONWARNINGS": "ignore"}
    holder = subprocess.Popen([sys.executable, "-m", "dchag_cli", *ARGS, "--data",
                               str(sample_era5_zarr), "--out", str(run)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list((run / "checkpoints").glob("*.partial")):
            assert holder.poll() is None and time.time() < deadline
            time.sleep(0.05)
        rows = len(_steps(run))
        r = dchag("train", "forecast", "--resume", str(run))
        assert r.returncode == 1 and f"(PID {holder.pid})" in r.stderr
        r = dchag(*ARGS, "--data", str(sample_era5_zarr), "--out", str(run), "--overwrite")
        assert r.returncode == 1 and f"(PID {holder.pid})" in r.stderr
        assert len(_steps(run)) == rows
    finally:
        holder.kill()
        holder.wait()
