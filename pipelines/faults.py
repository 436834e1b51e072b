"""Named fault points, so the tests can prove what a crash at each point leaves behind.

`fault_point("prep:block-written")` does nothing unless the environment variable
`DCHAG_FAULT` names that point: then the process kills itself with SIGKILL (as `kill -9`
would); with `NAME=enospc` it raises the error a full disk raises; with `NAME=stall` it
waits (up to a minute) so a test can act while it holds its locks. The fault-injection
tests drive real `dchag` processes through every point and check that no artifact was
damaged and nothing was left behind.
"""

from __future__ import annotations

import errno
import os
import signal
import time

ENV = "DCHAG_FAULT"


def fault_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, kind = wanted.partition("=")
    if point != name:
        return
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
    if kind == "stall":
        time.sleep(60)
        return
    os.kill(os.getpid(), signal.SIGKILL)
