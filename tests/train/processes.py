"""Finding the processes of a `dchag … --gpus N` job on Linux (/proc): the launcher starts
one rank server (multiprocessing's fork server), and the ranks are forked from it."""

from __future__ import annotations

import os
from pathlib import Path

SERVER = b"multiprocessing.forkserver"


def parent(pid: int) -> int:
    """The parent's pid, or -1 once the process is gone."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and parent(int(p.name)) == pid]


def rank_server(launcher: int) -> int | None:
    """The launcher's rank server, once it has started."""
    found = [p for p in children(launcher) if SERVER in cmdline(p)]
    return found[0] if found else None


def ranks(launcher: int) -> list[int]:
    """The launcher's rank processes (forked by its rank server), oldest first."""
    server = rank_server(launcher)
    return [] if server is None else sorted(children(server))


def importing_torch(pid: int) -> bool:
    """Whether the process has torch's C++ library mapped: `import torch` began."""
    try:
        return b"libtorch" in (Path("/proc") / str(pid) / "maps").read_bytes()
    except OSError:
        return False


def in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except OSError:
        return False
