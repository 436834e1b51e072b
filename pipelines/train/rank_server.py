"""How `--gpus N` starts its rank processes: forked from one server that has imported torch.

A spawned rank is a new interpreter that imports torch and the training code before its
first step: about two CPU-seconds per rank, paid by every rank of every launch, and paid
N times at once on the same cores. multiprocessing's fork server imports them once; each
rank is then a fork of it (safe: the server is single-threaded and has touched no device).
One server serves every launch of this process while the environment, the working folder
and `sys.path` stay as they were when it started; when one of them changes it is replaced,
so a rank always starts as a spawned one would.

Signals. The server must outlive a stop signal sent to every process of the job (SLURM,
`timeout`, a terminal's Ctrl-C): the launcher learns each rank's exit status from it, and
would read a dead server as every rank failing while they are still writing their
checkpoint. It ignores SIGINT itself, ignores SIGTERM and SIGUSR1 here, and exits when
this process does. A rank gets Python's default handling back as it enters (`enter_rank`).
A Ctrl-C while the server imports torch ends it quietly with 130 (`_SERVER_STARTUP`): the
launcher, which got the same Ctrl-C, says so in one line.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
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
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
"""

# The environment, working folder and sys.path the running server started with.
_started_for: tuple | None = None


def _launch_state() -> tuple:
    """What a rank inherits from its server. torch's launcher keeps its own settings in
    TORCHELASTIC_* variables of this process, and hands the ranks theirs explicitly."""
    env = sorted((k, v) for k, v in os.environ.items() if not k.startswith("TORCHELASTIC_"))
    return (tuple(env), os.getcwd(), tuple(sys.path))


@contextlib.contextmanager
def rank_server(preload: list[str]) -> Iterator[str | None]:
    """A fork server for this launch's ranks, importing `preload` (module names) once.

    Yields PYTHONPATH as it is here (None if unset), for `enter_rank`: the server's own
    copy names the start-up folder, which is gone once the server is running.
    """
    global _started_for
    state = _launch_state()
    server = forkserver._forkserver
    running = getattr(server, "_forkserver_pid", None) is not None
    if _started_for != state and running and hasattr(server, "_stop"):
        server._stop()  # multiprocessing's own way to stop its fork server (private)
    previous = os.environ.get("PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="dchag-rank-") as tmp:
        Path(tmp, "sitecustomize.py").write_text(_SERVER_STARTUP)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, previous) if p)
        os.environ["DCHAG_RANK_SERVER"] = "1"
        try:
            multiprocessing.set_forkserver_preload(preload)
            forkserver.ensure_running()
            _started_for = state
        finally:
            os.environ.pop("DCHAG_RANK_SERVER", None)
            if previous is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = previous
        # the folder stays until the launch ends: the server may still be starting up
        yield previous


def enter_rank(pythonpath: str | None) -> None:
    """First thing in a rank: the launcher's PYTHONPATH, Python's usual signal handling
    (Ctrl-C raises KeyboardInterrupt, SIGTERM ends the process until the training loop
    installs its own handlers), and spawn as the way to start processes."""
    if pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A process this rank starts is spawned, as from a spawned rank, not forked from a fork
    # server of the rank's own (multiprocessing's default in a fork server's child).
    multiprocessing.set_start_method("spawn", force=True)
