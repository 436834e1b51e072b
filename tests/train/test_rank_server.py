"""Ranks forked from one rank server (`rank_server.py`): they start as spawned ranks would,
the server is replaced when the launch environment changes, and it outlives the stop
signals a scheduler sends to every process of the job (the launcher learns each rank's
exit status from it)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.train.distributed import launch


def _rank_view(_: object) -> dict:
    return {"value": os.environ.get("DCHAG_TEST_VALUE"), "cwd": os.getcwd(),
            "pythonpath": os.environ.get("PYTHONPATH"), "server": os.getppid(),
            "rank": os.environ["RANK"],
            "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            "start": multiprocessing.get_start_method()}


def _state(pid: int) -> str:
    """The process state letter (Z: exited, not yet reaped), or "" once gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def test_ranks_start_as_spawned_ones_would_and_the_server_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("DCHAG_TEST_VALUE", "a")
    first = launch(_rank_view, None, 2)
    assert first["rank"] == "0" and first["value"] == "a" and first["cwd"] == os.getcwd()
    assert first["pythonpath"] == os.environ.get("PYTHONPATH")  # not the start-up folder
    assert first["sigint"] and first["sigterm"]  # Python's own handling, as a spawned rank
    assert first["start"] == "spawn"  # not a fork server of the rank's own
    assert launch(_rank_view, None, 2)["server"] == first["server"]  # imported once

    monkeypatch.setenv("DCHAG_TEST_VALUE", "b")  # the environment reaches the ranks as is
    changed = launch(_rank_view, None, 2)
    assert (changed["value"], changed["server"]) == ("b", first["server"])
    monkeypatch.delenv("DCHAG_TEST_VALUE")
    assert launch(_rank_view, None, 2)["value"] is None

    monkeypatch.chdir(tmp_path)  # another folder: another server
    moved = launch(_rank_view, None, 2)
    assert moved["cwd"] == str(tmp_path) and moved["server"] != first["server"]
    assert _state(first["server"]) == ""  # the old server is gone, not left behind


def test_the_server_outlives_the_signals_sent_to_every_process_of_a_job():
    server = launch(_rank_view, None, 2)["server"]
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        os.kill(server, sig)
    time.sleep(0.5)
    assert _state(server) not in ("", "Z")
    assert launch(_rank_view, None, 2)["server"] == server


SETUP_INTERRUPTED = """
import os
from pipelines.train.distributed import _interruptible
from pipelines.train.rank_server import RankStart

def joining_the_process_group(_):
    raise KeyboardInterrupt  # a Ctrl-C before the training loop's own handlers

_interruptible(joining_the_process_group, None, RankStart(dict(os.environ), {}))
"""


def test_a_ctrl_c_while_a_rank_sets_up_ends_it_quietly_with_130():
    """Ranks forked from the server reach their own code at once, so a Ctrl-C as they
    start lands in their set-up: the launcher's one line, no traceback from a rank."""
    done = subprocess.run([sys.executable, "-c", SETUP_INTERRUPTED], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert (done.returncode, done.stderr) == (130, "")


LAUNCHER_GONE = """
import multiprocessing, os, sys, _multiprocessing
from multiprocessing import resource_tracker
from pipelines.train.rank_server import rank_server

def start(target):
    ctx = multiprocessing.get_context("forkserver")
    lock = ctx.Lock()
    # what a launcher that has ended leaves its rank to unpickle: a semaphore unlinked
    _multiprocessing.sem_unlink(lock._semlock.name)
    resource_tracker.unregister(lock._semlock.name, "semaphore")
    child = ctx.Process(target=target, args=(lock,))
    child.start()
    child.join()
    sys.stdout.write(str(child.exitcode))
    return lock  # kept to the end: its clean-up would unlink the semaphore a second time

if sys.argv[1] == "rank server":
    with rank_server([]):
        kept = start(os.getpid)
else:
    kept = start(os.getpid)
sys.stdout.flush()
os._exit(0)
"""


def test_a_rank_forked_as_its_launcher_ends_prints_nothing():
    """A Ctrl-C just as the ranks were forked: a rank found its launcher's semaphore gone
    while unpickling its start data and printed a FileNotFoundError traceback under the
    launcher's one-line message. The rank server's children keep quiet about that."""
    def run(server: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", LAUNCHER_GONE, server],
                              capture_output=True, text=True, timeout=120)

    plain = run("multiprocessing's own")
    assert "FileNotFoundError" in plain.stderr and plain.stdout == "1"
    ours = run("rank server")
    assert ours.stdout == "1" and ours.stderr == "", ours.stderr  # the rank did not start


def test_a_killed_rank_server_is_one_line_and_the_run_resumes(tmp_path, sample_era5_zarr):
    """`kill -9` of the rank server mid-run: its ranks' exit statuses die with it; the
    launcher says so in one line, and the run resumes from its checkpoint."""
    from tests.train import processes

    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dchag_cli", "train", "forecast", "--data",
         str(sample_era5_zarr), "--out", str(run), "--gpus", "2", "--steps", "100000",
         "--lead", "6h", "--workers", "0", "--batch-size", "2", "--log-every", "1",
         "--ckpt-every", "5", "--val-every", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (run / "checkpoints" / "latest").exists():  # a checkpoint is written
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        server = processes.rank_server(proc.pid)
        assert server is not None
        os.kill(server, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    lines = [ln for ln in (out + err).splitlines() if ln.startswith(("error", "interrupted"))]
    assert proc.returncode == 1 and "Traceback" not in out + err, out + err
    assert len(lines) == 1 and "the rank server that started the ranks died" in lines[0]
    reached = int((run / "checkpoints" / "latest").read_text().removeprefix("step_"))
    r = subprocess.run([sys.executable, "-m", "dchag_cli", "train", "forecast", "--resume",
                        str(run), "--steps", str(reached + 2), "--gpus", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (run / "checkpoints" / f"step_{reached + 2:08d}").is_dir()
