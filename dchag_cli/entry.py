"""The `dchag` command's entry point, importing nothing heavy itself.

Ctrl-C while the command tree is still being imported (torch, xarray: a second or more)
is one line and exit 130, like Ctrl-C at any later moment. Only the stage the command line
names is imported (`root.py`).
"""

from __future__ import annotations

import signal
import sys

from pipelines.errors import Interrupted

INTERRUPTED = "interrupted ({}): stopped while starting; nothing was written\n"


def _stop(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main() -> None:
    # A scheduler's SIGTERM (or SLURM's SIGUSR1 warning) and a closed terminal's SIGHUP
    # stop a command as Ctrl-C does: one line (`console.user_errors`), never a silent
    # death or a traceback. Training defers them to a step boundary (`preempt.py`).
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, _stop)
    try:
        from dchag_cli.root import command_for

        command = command_for(sys.argv[1:])
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        sys.stderr.write(INTERRUPTED.format("Ctrl-C" if signum == signal.SIGINT
                                            else f"signal {signum}"))
        raise SystemExit(128 + signum) from None
    command(args=sys.argv[1:], prog_name="dchag")
