"""Stopping a training job cleanly when a scheduler asks: at a step boundary, with a
checkpoint of the step reached.

SLURM (at the time limit, on preemption, with `--signal=USR1@120` as an early warning),
`timeout` and Ctrl-C signal every process of the job. Raising in the signal handler
would stop each rank wherever it is — mid-step, mid-collective — and lose the steps since
the last checkpoint. Instead the handler only records the signal; after each step the
ranks agree (a max over the world, so one rank's signal stops all) and, if any was
signalled, write a checkpoint of that step together and leave with 128 + the signal.
Loader worker processes ignore these signals: they end with their rank.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import torch
import torch.distributed as dist

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)


class StopRequest:
    """The first stopping signal this process received (0: none)."""

    def __init__(self) -> None:
        self.signum = 0

    def _handler(self, sig: int, frame: Any) -> None:
        self.signum = self.signum or sig

    @contextlib.contextmanager
    def deferred(self) -> Iterator[StopRequest]:
        """Within the block, SIGINT, SIGTERM, SIGHUP and SIGUSR1 are recorded, not raised."""
        saved = {}
        try:
            for sig in SIGNALS:
                saved[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: signals stay as they were
            pass
        try:
            yield self
        finally:
            for sig, old in saved.items():
                signal.signal(sig, old)

    def agreed(self, device: torch.device) -> int:
        """Collective: the signal to stop for, the same on every rank (0: go on)."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return self.signum
        flag = torch.tensor([self.signum], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


def exit_rank_quietly(code: int) -> NoReturn:
    """Leave a rank with `code` once it has stopped for a signal: its launcher forwards the
    signal to the ranks again, and a second one must not interrupt this exit with a
    traceback."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # only the main thread may
            signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(code) from None


def init_loader_worker(_worker_id: int = 0) -> None:
    """`worker_init_fn` of loader workers: the rank decides when to stop, not them.

    A worker also outlives its rank for a moment when the rank is killed outright (the
    OOM killer, kill -9): the thread that hands the rank a batch's shared memory then
    finds the connection gone and prints its traceback. The launcher already names the
    dead rank in one line, so a lost peer is not printed."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    default = sys.excepthook

    def quiet_lost_peer(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if not isinstance(value, EOFError | ConnectionError):
            default(kind, value, tb)

    sys.excepthook = quiet_lost_peer


def leave_on_stop_signals() -> None:
    """A rank whose work is done (its result handed to the launcher) leaves at once on a
    stop signal, with 128 + the signal: nothing is left to save, and multiprocessing,
    which it is waiting in, would print a traceback for an exception raised there."""
    def leave(sig: int, frame: Any) -> None:
        os._exit(128 + sig)

    for sig in SIGNALS:
        with contextlib.suppress(ValueError):  # only the main thread may
            signal.signal(sig, leave)
