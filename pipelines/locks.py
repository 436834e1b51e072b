"""One writer at a time per artifact or run folder.

The lock is a hidden file beside the target (`.era5.zarr.lock`) held with `flock`: the
kernel releases it when its holder dies, `kill -9` included, so a crash never leaves a
stale lock that blocks the next run. The holder's PID is written into the file so a
refused writer can say who holds it. Locks are re-entrant within a process (a command
that locks its output and then writes it through `atomic_store` does not deadlock), and
the file is removed on release. Acquiring the lock also cleans what an interrupted
writer of the same target left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import DchagError
from pipelines.fsops import clean_stale

_held: dict[str, list[int]] = {}  # lock file → [fd, depth]


def lock_file(target: Path) -> Path:
    target = Path(os.path.abspath(target))
    return target.with_name(f".{target.name}.lock")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return "unknown"
    return pid or "unknown"


def _acquire(path: Path, target: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DchagError(f"cannot create the lock file {path.name} ({exc.strerror})",
                             path=target.parent, fix="choose a writable output folder") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DchagError(f"another dchag process (PID {_holder(path)}) is writing it",
                             path=target, fix="wait for that process to finish (or stop "
                             "it), then run again") from None
        try:  # the previous holder may have removed the file between our open and flock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


@contextlib.contextmanager
def write_lock(target: Path) -> Iterator[None]:
    """Hold the write lock of `target` (a store or run folder) for the block."""
    target = Path(os.path.abspath(target))
    if not target.parent.is_dir():
        raise DchagError("the output folder does not exist", path=target.parent,
                         fix="create it first or choose another --out")
    path = lock_file(target)
    key = str(path)
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fd = _acquire(path, target)
    _held[key] = [fd, 1]
    try:
        clean_stale(target)
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
