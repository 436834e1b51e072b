"""Atomic zarr artifacts.

A stage writes its store under a temporary name beside the target and swaps it into place
only when everything succeeded, so a crash or a bad input never leaves a half-written
artifact, and an existing artifact survives a failed rewrite. Appends are transactions
over a clone. Every write holds the target's lock, so two writers never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import zarr

from pipelines.errors import DchagError
from pipelines.faults import fault_point
from pipelines.fsops import clone_tree, remove_tree, replace_dir, temp_sibling
from pipelines.guard import check_replaceable
from pipelines.locks import write_lock

# The command that writes each kind of artifact (for the hints of "wrong artifact" errors).
PRODUCERS = {"era5": "dchag prep era5", "appl": "dchag prep appl",
             "reconstruction": "dchag predict masks", "predictions": "dchag eval forecast",
             "scores": "dchag eval forecast", "mask_scores": "dchag eval masks",
             "band_importance": "dchag eval bands",
             "bench": "dchag bench", "metrics": "dchag pretrain or dchag train forecast"}
ZARR_FORMAT = 2  # readable by zarr 2.x tools (anemoi, older xarray) as well as zarr 3


def check_writable_target(out: Path, *, overwrite: bool, kinds: Iterable[str],
                          inputs: Iterable[Path] = ()) -> None:
    """Fail before any work is done if `out` cannot be produced: its folder must exist and
    be writable, it must not overlap an input, and an existing `out` is replaced only
    with --overwrite and only if it is a dchag artifact of one of `kinds`."""
    parent = Path(out).resolve().parent
    if not parent.is_dir():
        raise DchagError("the output folder does not exist", path=parent,
                         fix="create it first or choose another --out")
    if not os.access(parent, os.W_OK):
        raise DchagError("the output folder is not writable", path=parent,
                         fix="choose another --out")
    check_replaceable(Path(out), kinds, inputs, overwrite)


def drain_pending_writes(timeout: float = 30.0) -> None:
    """Wait for chunk writes zarr still has in flight. When one write of an array update
    fails (a full disk), zarr's gather returns at once while the others run on in its
    I/O loop; removing the partial store before they end would let them recreate it."""
    try:
        from zarr.core.sync import _get_loop
    except ImportError:  # another zarr layout: nothing we can wait on
        return
    loop = _get_loop()

    async def drain() -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout + 1)


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _disk_full(out: Path, unchanged: bool) -> DchagError:
    kept = "the existing store is unchanged" if unchanged else "nothing was written"
    return DchagError(f"out of disk space while writing ({kept})", path=out,
                      fix="free space or choose another --out, then run again")


@contextlib.contextmanager
def _staged(out: Path, fault: str, clone: bool = False) -> Iterator[Path]:
    """The one mechanism behind every store write: with `out`'s lock held, build under
    `OUT.partial-PID-XXXX` (a hard-linked clone of `out` when `clone`), consolidate, and
    swap into place atomically only when the block finishes. On any failure the previous
    `out` is untouched, a full disk becomes one line, and the partial folder is removed
    (now, or by the next writer after a kill)."""
    with write_lock(out):
        tmp = temp_sibling(out, "partial")
        existed = out.exists()
        try:
            if clone:
                clone_tree(out, tmp)
            yield tmp
            fault_point(fault)
            zarr.consolidate_metadata(str(tmp))
            replace_dir(tmp, out)
        except BaseException as exc:
            drain_pending_writes()
            if _is_disk_full(exc):
                raise _disk_full(out, existed) from exc
            raise
        finally:
            remove_tree(tmp)


@contextlib.contextmanager
def atomic_store(out: Path) -> Iterator[zarr.Group]:
    """Yield a fresh zarr group that becomes `out` only if the block finishes without
    error (`_staged`)."""
    with _staged(Path(out), "store:before-swap") as tmp:
        yield zarr.open_group(str(tmp), mode="w", zarr_format=ZARR_FORMAT)


def write_dataset(ds, out: Path) -> None:
    """Write an xarray Dataset as a zarr store with `atomic_store`'s guarantees."""
    with _staged(Path(out), "store:before-swap") as tmp:
        ds.to_zarr(str(tmp), mode="w", zarr_format=ZARR_FORMAT, consolidated=False)


@contextlib.contextmanager
def store_transaction(store: Path) -> Iterator[zarr.Group]:
    """Change an existing store as one transaction (`--append`).

    The block works on a private clone (its chunk files are hard links, so nothing large
    is copied) that replaces the store atomically only when the block succeeds. A failure
    at any point — a bad input, a full disk, `kill -9` — leaves the store exactly as it
    was, so a retry is a clean append."""
    with _staged(Path(store), "append:before-swap", clone=True) as tmp:
        yield zarr.open_group(str(tmp), mode="r+")


def store_bytes(path: Path) -> int:
    """Size on disk of a directory store."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def dims_array(group: zarr.Group, name: str, dims: list[str], **kwargs) -> zarr.Array:
    """Create an array xarray understands (zarr v2 keeps dimension names in an attribute).
    Python-object string data is stored as variable-length UTF-8."""
    data = kwargs.get("data")
    if data is not None and np.asarray(data).dtype.kind == "O":
        values = np.asarray(kwargs.pop("data"), dtype=object)
        arr = group.create_array(name, shape=values.shape, dtype=str, **kwargs)
        arr[...] = values
        arr.attrs["_ARRAY_DIMENSIONS"] = dims
        return arr
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
        raise DchagError(f"not a zarr store ({type(exc).__name__})", path=path,
                         fix=f"pass a store written by `{PRODUCERS.get(kind, 'dchag')}`"
                         ) from exc
    found = group.attrs.get("dchag_artifact")
    if found != kind:
        raise DchagError(f"not a dchag {kind} artifact (found {found!r})", path=path,
                         fix=f"produce one with `{PRODUCERS.get(kind, 'dchag')}`")
    return group


def write_records(records: list[dict], out: Path, attrs: dict, dim: str = "record") -> None:
    """A tidy table (one row per record, one array per field) as an atomic zarr store."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    with atomic_store(Path(out)) as g:
        g.attrs.update(attrs)
        for key in keys:
            values = [r.get(key) for r in records]
            if all(isinstance(v, bool) for v in values):
                data = np.array(values, dtype=bool)
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                data = np.array(values, dtype=np.int64)
            elif all((isinstance(v, int | float) and not isinstance(v, bool)) or v is None
                     for v in values):
                data = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            else:
                data = np.array(["" if v is None else str(v) for v in values], dtype=str)
            dims_array(g, key, [dim], data=data, fill_value=None)
