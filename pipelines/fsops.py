"""Directory operations that never leave a user's data half-replaced.

- `replace_dir` swaps a finished folder into place. On Linux it is one atomic
  `renameat2(RENAME_EXCHANGE)`: at every instant the target is either the old folder or
  the new one, also under `kill -9`. Where the filesystem cannot exchange (NFS, some
  FUSE mounts) it falls back to two renames, and `clean_stale` repairs the window between
  them on the next run.
- `clone_tree` makes a private working copy of a store for a transaction: chunk files are
  hard links (no bytes copied; zarr replaces a chunk file by rename, never rewrites it in
  place), metadata files are copied.
- `write_atomic` / `write_json` write one small file (a config, a benchmark's results)
  under a temporary sibling name and rename it into place: a reader sees the old file or
  the new one, never a truncated one.
- Temporary names carry the writer's PID: `NAME.partial-PID-XXXX`, `NAME.old-PID-XXXX`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from pipelines.notes import note

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def temp_sibling(target: Path, kind: str) -> Path:
    target = Path(target)
    return target.with_name(f"{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


def write_atomic(path: Path, text: str) -> Path:
    """`text` into `path`, all or nothing (a temporary sibling, then one rename)."""
    path = Path(path)
    tmp = temp_sibling(path, "partial")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, obj: object, indent: int | None = 2) -> Path:
    return write_atomic(path, json.dumps(obj, indent=indent))


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the platform or filesystem cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, target: Path) -> None:
    """Move the finished folder `new` to `target`, replacing what is there."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the previous version
        return
    old = temp_sibling(target, "old")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(path: Path) -> None:
    """Delete a folder that writers may still be finishing: zarr writes chunks from an
    event loop, and when one write fails the others can still land for a moment."""
    path = Path(path)
    for _ in range(50):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05)


def clean_stale(target: Path) -> None:
    """Remove what an interrupted writer of `target` left beside it.

    Called with `target`'s write lock held, so no live writer owns these names. If a
    fallback swap was cut between its two renames, the previous version is put back."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    partials = sorted(parent.glob(f"{_glob_escape(target.name)}.partial-*"))
    olds = sorted(parent.glob(f"{_glob_escape(target.name)}.old-*"),
                  key=lambda p: p.stat().st_mtime)
    if olds and not target.exists():
        os.replace(olds.pop(), target)
        note(f"{target}: restored the previous version after an interrupted replace")
    for p in [*partials, *olds]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def clone_tree(src: Path, dst: Path) -> None:
    """Copy the store `src` to `dst`: chunk files are hard links (no bytes copied), the
    metadata files (`.zarray`, `.zattrs`, …) real copies. Safe because zarr (≥ 3.1) writes
    a chunk by renaming a new file over it, which leaves the linked original intact
    (`tests/data/test_transactions.py` checks that). Across filesystems it copies."""
    src, dst = Path(src), Path(dst)
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            a, b = Path(root) / f, dst / rel / f
            if not f.startswith("."):
                try:
                    os.link(a, b)
                    continue
                except OSError:
                    pass
            shutil.copy2(a, b)
        dirs.sort()
