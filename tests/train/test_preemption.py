"""A scheduler's signal to every process of a training job: the ranks stop at a step
boundary, write a checkpoint of the step reached, print one line and exit 128 + signal;
`--resume` then continues the same loss curve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runner import app, runner
from tests.train import processes

FAST = ["--workers", "2", "--batch-size", "2", "--log-every", "2", "--val-every", "1000",
        "--ckpt-every", "1000", "--lead", "6h"]


def _losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def _signal_mid_run(data: Path, run: Path, gpus: int, sig: int, steps: int
                    ) -> subprocess.CompletedProcess:
    """Start training in its own process group, signal the whole group once steps are
    logged (as SLURM and `timeout` do), and wait for it."""
    cmd = [sys.executable, "-m", "dchag_cli", "train", "forecast", "--data", str(data),
           "--out", str(run), "--gpus", str(gpus), "--steps", str(steps), *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    metrics = run / "metrics.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be signalled"
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize(("gpus", "sig"), [(1, signal.SIGTERM), (2, signal.SIGUSR1),
                                         (2, signal.SIGHUP)])
@pytest.mark.slow
def test_a_signal_checkpoints_the_step_reached_and_resume_continues(tmp_path, gpus, sig,
                                                                    sample_era5_zarr):
    steps = 60
    run = tmp_path / "run"
    done = _signal_mid_run(sample_era5_zarr, run, gpus, sig, steps)
    assert done.returncode == 128 + sig, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [x for x in done.stderr.splitlines() if "interrupted" in x]
    assert len(lines) == 1 and f"signal {int(sig)}" in lines[0], done.stderr
    reached = int((run / "checkpoints" / "latest").read_text().removeprefix("step_"))
    assert 0 < reached < steps and f"step_{reached:08d}" in lines[0]
    assert "--resume" in lines[0]

    r = runner.invoke(app, ["train", "forecast", "--resume", str(run)])
    assert r.exit_code == 0, r.output
    whole = tmp_path / "whole"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(whole), "--gpus", str(gpus), "--steps", str(steps), *FAST])
    assert r.exit_code == 0, r.output
    a, b = _losses(whole), _losses(run)
    assert sorted(a) == sorted(b) == list(range(2, steps + 1, 2))
    # every record is the same, but the one whose averaging window the stop split in two
    # (when the signal came between two records)
    split = reached + 2 - reached % 2 if reached % 2 else None
    for step in a:
        if step != split:
            assert b[step] == pytest.approx(a[step], rel=1e-6), step


@pytest.mark.slow
def test_a_rank_killed_outright_is_one_line_from_the_launcher(tmp_path, sample_era5_zarr):
    """kill -9 of one worker (the OOM killer's way): the survivor's broken collective
    prints nothing; the launcher names the dead rank in one line."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dchag_cli", "train", "forecast", "--data",
           str(sample_era5_zarr), "--out", str(run), "--gpus", "2", "--steps", "100000",
           *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.2)
    workers = processes.ranks(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err + out and "UserWarning" not in err
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "SIGKILL" in errors[0], err
    assert "out-of-memory killer" in errors[0]  # the likely cause, and what to change


LOST_PEER = """
import os, sys, time
from multiprocessing import connection, process, resource_sharer
from pipelines.train.preempt import init_loader_worker
if sys.argv[1] == "worker":
    init_loader_worker(0)
resource_sharer.DupFd(os.open(os.devnull, os.O_RDONLY))  # starts the sharing thread
client = connection.Client(resource_sharer._resource_sharer._address,
                           authkey=process.current_process().authkey)
client.close()  # the receiving rank is gone before it asked for its batch
time.sleep(0.5)
"""


def test_a_loader_worker_whose_rank_was_killed_prints_nothing():
    """The thread handing a batch's shared memory to a rank killed outright printed an
    EOFError traceback; a loader worker keeps quiet about a lost peer."""
    def stderr(role: str) -> str:
        return subprocess.run([sys.executable, "-c", LOST_PEER, role], capture_output=True,
                              text=True, timeout=60).stderr

    assert "EOFError" in stderr("plain process")
    assert stderr("worker") == ""


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("moment", ["while importing", "while the rank server starts",
                                    "as the ranks start"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_during_start_up_is_one_line(tmp_path, sample_era5_zarr, moment, sig):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dchag_cli", "train", "forecast", "--data",
           str(sample_era5_zarr), "--out", str(run), "--gpus", "2", "--steps", "50", *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    # Into `import torch` (its library mapped), past the interpreter's own start-up: a
    # fixed sleep is not that moment on a loaded machine.
    deadline = time.monotonic() + 60

    def reached() -> bool:
        if moment == "while importing":
            return processes.importing_torch(proc.pid)
        if moment == "while the rank server starts":
            server = processes.rank_server(proc.pid)
            return server is not None and processes.importing_torch(server)
        return len(processes.ranks(proc.pid)) >= 2

    while not reached() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert reached(), f"never reached: {moment}"
    os.killpg(proc.pid, sig)  # a terminal's Ctrl-C, a scheduler's stop: the whole group
    out, err = proc.communicate(timeout=120)
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert proc.returncode == 128 + sig, out + err
    assert "Traceback" not in out + err
    name = "Ctrl-C" if sig == signal.SIGINT else f"signal {int(sig)}"
    assert lines[-1].startswith(f"interrupted ({name})")
    assert sum(ln.startswith("interrupted") for ln in lines) == 1
