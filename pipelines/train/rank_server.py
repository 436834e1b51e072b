"""How `--gpus N` starts its rank processes: forked from one server that has imported torch.

A spawned rank is a new interpreter that imports torch and the training code before its
first step: about two CPU-seconds per rank, paid by every rank of every launch, and paid
N times at once on the same cores. multiprocessing's fork server imports them once; each
rank is then a fork of it (safe: the server is single-threaded and has touched no device).
One server serves every launch of this process while the working folder and `sys.path`
stay as they were when it started (when one changes it is replaced), and each rank takes
the launcher's environment as it is at launch, so a rank starts as a spawned one would —
but for what torch and the preloaded code read from the environment as they are imported.

Signals. The server must outlive a stop signal sent to every process of the job (SLURM,
`timeout`, a terminal's Ctrl-C): the launcher learns each rank's exit status from it, and
would read a dead server as every rank failing while they are still writing their
checkpoint. It ignores SIGINT itself, ignores SIGTERM, SIGHUP and SIGUSR1 here, and exits when
this process does. A rank gets Python's default handling back as it enters (`enter_rank`).
A Ctrl-C while the server imports torch ends it quietly with 130 (`_SERVER_STARTUP`): the
launcher, which got the same Ctrl-C, says so in one line. A rank forked just as its
launcher ends (that Ctrl-C again, the launcher's fork request already sent) finds the
launcher's start data gone — a semaphore unlinked, a pipe closed — while unpickling it;
the server's children report that quietly (it is the launcher's line to say), and every
other start-up error as Python would.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path

# Run by the server before anything else (Python imports `sitecustomize` at start-up, from
# a folder put on PYTHONPATH only while the server starts); it then hands over to a
# `sitecustomize` of the environment, if there is one.
_SERVER_STARTUP = """\
import importlib.machinery, importlib.util, os, signal, sys
if os.environ.pop("DCHAG_RANK_SERVER", None):
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    def _quiet_when_the_launcher_is_gone(kind, exc, tb, _default=sys.excepthook):
        import traceback
        unpickling = any(f.name == "_main" and f.filename.endswith("spawn.py")
                         for f in traceback.extract_tb(tb))
        if not (unpickling and issubclass(kind, (FileNotFoundError, EOFError,
                                                 ConnectionError))):
            _default(kind, exc, tb)
    sys.excepthook = _quiet_when_the_launcher_is_gone
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
"""

# The working folder and sys.path the running server started with, and its environment.
_started_for: tuple | None = None
_server_env: dict[str, str] = {}


@dataclass(frozen=True)
class RankStart:
    """What a rank needs from its launcher to start as a spawned one would: the launcher's
    environment now, and the one the server started with (what the rank inherited)."""

    env: dict[str, str]
    server_env: dict[str, str]
    launcher_pid: int = 0  # the process whose death ends the rank (0: none watched)


@contextlib.contextmanager
def rank_server(preload: list[str]) -> Iterator[RankStart]:
    """A fork server for this launch's ranks, importing `preload` (module names) once.

    A server started in another working folder or with another `sys.path` is replaced
    (they decide what the ranks import). The environment is not compared — a test runner
    changes it between every two tests — but handed to each rank (`enter_rank`).
    """
    global _started_for, _server_env
    state = (os.getcwd(), tuple(sys.path))
    server = forkserver._forkserver
    running = getattr(server, "_forkserver_pid", None)
    if _started_for != state and running is not None and hasattr(server, "_stop"):
        server._stop()  # multiprocessing's own way to stop its fork server (private)
    launcher_env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="dchag-rank-") as tmp:
        Path(tmp, "sitecustomize.py").write_text(_SERVER_STARTUP)
        previous = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, previous) if p)
        os.environ["DCHAG_RANK_SERVER"] = "1"
        try:
            multiprocessing.set_forkserver_preload(preload)
            _start_resource_tracker()
            forkserver.ensure_running()
            if getattr(server, "_forkserver_pid", None) != running:  # started just now
                _started_for, _server_env = state, dict(os.environ)
        finally:
            os.environ.clear()
            os.environ.update(launcher_env)
        # the folder stays until the launch ends: the server may still be starting up
        yield RankStart(launcher_env, _server_env, os.getpid())


def server_died() -> bool:
    """Whether this process's rank server has died (`kill -9`): read from /proc, without
    reaping it (multiprocessing reaps and replaces it on the next launch)."""
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return Path("/proc/self").exists()  # gone (where /proc can tell)
    return state in ("Z", "X")


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker, started ignoring SIGHUP as it already ignores
    SIGINT and SIGTERM: a SIGHUP to the job (a closed terminal) would otherwise end it,
    and the ranks' semaphores would be reported, each with a traceback, at their exit."""
    from multiprocessing import resource_tracker

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()  # the ignored SIGHUP survives its exec
    finally:
        signal.signal(signal.SIGHUP, previous)


def enter_rank(start: RankStart) -> None:
    """First thing in a rank: the launcher's environment with what torch's launcher set
    for this rank (the variables that differ from the server's), Python's usual signal
    handling (Ctrl-C raises KeyboardInterrupt, SIGTERM ends the process until the training
    loop installs its own handlers), and spawn as the way to start processes."""
    for_this_rank = {k: v for k, v in os.environ.items() if start.server_env.get(k) != v}
    os.environ.clear()
    os.environ.update(start.env)
    os.environ.update(for_this_rank)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # A process this rank starts is spawned, as from a spawned rank, not forked from a fork
    # server of the rank's own (multiprocessing's default in a fork server's child).
    multiprocessing.set_start_method("spawn", force=True)
    if start.launcher_pid:
        watch_launcher(start.launcher_pid)


LAUNCHER_GONE = 1  # the exit code of a rank whose launcher died


def watch_launcher(pid: int) -> None:
    """End this rank within a second of its launcher's death (`kill -9`, the OOM killer):
    nobody would stop it otherwise, or read what it prints. A pidfd (Linux ≥ 5.3) wakes
    the watcher the moment the launcher exits and cannot be fooled by a reused PID; where
    there is none, the launcher is polled every half second."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while not gone():
                time.sleep(0.5)
        os._exit(LAUNCHER_GONE)

    if fd is None and gone():
        os._exit(LAUNCHER_GONE)
    threading.Thread(target=watch, daemon=True, name="dchag-launcher-watch").start()
