"""Atomic zarr artifacts.

A stage writes its store under a temporary name beside the target and moves it into place
only when everything succeeded, so a crash or a bad input never leaves a half-written
artifact, and an existing artifact survives a failed rewrite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import zarr

from pipelines.errors import DchagError

ZARR_FORMAT = 2  # readable by zarr 2.x tools (anemoi, older xarray) as well as zarr 3


def check_writable_target(out: Path, *, overwrite: bool) -> None:
    """Fail before any work is done if `out` cannot be produced."""
    parent = out.resolve().parent
    if not parent.is_dir():
        raise DchagError("the output folder does not exist", path=parent,
                         fix="create it first or choose another --out")
    if not os.access(parent, os.W_OK):
        raise DchagError("the output folder is not writable", path=parent,
                         fix="choose another --out")
    if out.exists() and not overwrite:
        raise DchagError("already exists", path=out,
                         fix="pass --overwrite to replace it (or --append where supported)")


@contextlib.contextmanager
def atomic_store(out: Path) -> Iterator[zarr.Group]:
    """Yield a fresh zarr group that becomes `out` only if the block finishes without error."""
    out = Path(out)
    tmp = out.with_name(f"{out.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=ZARR_FORMAT)
        yield group
        zarr.consolidate_metadata(str(tmp))
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, target: Path) -> None:
    """Move `new` to `target`; an existing target is moved aside first, then deleted.

    `os.replace` cannot replace a non-empty directory, hence the three steps; the window in
    which `target` does not exist is two renames long.
    """
    old = None
    if target.exists():
        old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def store_bytes(path: Path) -> int:
    """Size on disk of a directory store."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def dims_array(group: zarr.Group, name: str, dims: list[str], **kwargs) -> zarr.Array:
    """Create an array xarray understands (zarr v2 keeps dimension names in an attribute)."""
    arr = group.create_array(name, **kwargs)
    arr.attrs["_ARRAY_DIMENSIONS"] = dims
    return arr


def open_artifact(path: Path, kind: str, mode: str = "r") -> zarr.Group:
    """Open a dchag artifact of the given kind, refusing anything else with a clear message."""
    path = Path(path)
    if not path.exists():
        raise DchagError("no such artifact", path=path)
    try:
        group = zarr.open_group(str(path), mode=mode)
    except Exception as exc:  # zarr raises several types for non-stores
        raise DchagError(f"not a zarr store ({type(exc).__name__})", path=path) from exc
    found = group.attrs.get("dchag_artifact")
    if found != kind:
        raise DchagError(f"not a dchag {kind} artifact (found {found!r})", path=path,
                         fix=f"produce one with `dchag prep {kind}`")
    return group


def write_records(records: list[dict], out: Path, attrs: dict, dim: str = "record") -> None:
    """A tidy table (one row per record, one array per field) as an atomic zarr store."""
    import numpy as np

    keys = list(dict.fromkeys(k for r in records for k in r))
    with atomic_store(Path(out)) as g:
        g.attrs.update(attrs)
        for key in keys:
            values = [r.get(key) for r in records]
            if all(isinstance(v, bool) for v in values):
                data = np.array(values, dtype=bool)
            elif all((isinstance(v, int | float) and not isinstance(v, bool)) or v is None
                     for v in values):
                data = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            else:
                data = np.array(["" if v is None else str(v) for v in values], dtype=str)
            dims_array(g, key, [dim], data=data, fill_value=None)
