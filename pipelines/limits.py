"""Bounds on the counts a user gives, so an absurd value is one line, not a machine
brought down: a billion-step run, a hundred thousand loader processes, retries that
would wait for days."""

from __future__ import annotations

import os

from pipelines.errors import DchagError
from pipelines.notes import note

MAX_STEPS = 10**9  # about 30 years at one step a second
MAX_RETRIES = 100  # with exponential backoff, already hours of waiting
WORKERS_PER_CORE = 4  # beyond that, decoding processes only contend for the cores


def cores_here() -> int:
    """The cores this process may run on (a batch job's share, not the node's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_processes(asked: int, flag: str = "--workers", quiet: bool = False) -> int:
    """`asked`, or at most WORKERS_PER_CORE × the cores here (with a note saying so)."""
    cores = cores_here()
    cap = WORKERS_PER_CORE * cores
    if asked <= cap:
        return asked
    if not quiet:
        note(f"{flag} {asked} is more than {WORKERS_PER_CORE} × the {cores} cores here: "
             f"using {cap}")
    return cap


def check_at_most(value: int, limit: int, flag: str, why: str) -> None:
    if value > limit:
        raise DchagError(f"{flag} {value} is more than {limit:,} ({why})",
                         fix=f"pass {flag} {limit:,} or less")
