"""`kill -9` of the launcher of a `--gpus 2` run: no rank, fork server or helper process
outlives it (they would train on, unseen, holding the run's lock and the cores)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (children of children too)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie has exited; it only waits for its parent to reap it
            alive.add(pid)
    return alive


@pytest.mark.slow(seconds=40)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_no_process_outlives_a_killed_launcher(tmp_path, sample_era5_zarr):
    log = tmp_path / "log"
    with log.open("w") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "dchag_cli", "train", "forecast", "--data",
             str(sample_era5_zarr), "--out", str(tmp_path / "run"), "--gpus", "2",
             "--lead", "6h", "--workers", "0", "--batch-size", "2", "--steps", "1000000",
             "--log-every", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        deadline = time.monotonic() + 180
        while "training steps:" not in log.read_text():  # the ranks are training
            assert launcher.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        below = _descendants(launcher.pid)
        assert len(below) >= 3  # two ranks and the fork server they came from
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30  # each rank leaves within a second; slack for load
        while _alive(below) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(below) == set()
    finally:  # whatever a failure left: the launcher's whole session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
