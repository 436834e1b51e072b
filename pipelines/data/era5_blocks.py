"""Reading, checking, unpacking and regridding blocks of ERA5 time steps — in parallel.

`prep era5` is bound by decoding (netCDF/HDF5 decompression), not by the regrid. So:

- **read only what the regrid needs**: the source rows its weights touch (64 of 721 for
  bilinear 0.25° → 5.625°), the requested variables and levels;
- **unpack after the regrid**: packed int16 values are regridded as they are and scaled
  afterwards, which is exact because every target is a weighted mean (weights summing to
  one) and unpacking is affine; missing values are found among the points the regrid
  reads and become NaN first. Unit conversions (°C → K, …) are applied the same way.
  A weights file whose rows do not sum to one is unpacked before, equally exactly;
- **decode in parallel**: `--workers N` processes describe the input files, then each
  read whole time blocks (every file they need is opened in that process, at most two
  at a time); the main process writes blocks in order and keeps at most two per worker
  in flight, so memory is bounded by the workers, not by the number of files.
"""

from __future__ import annotations

import functools
import itertools
import os
import pickle
import signal
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from pipelines.data.channels import VARIABLES
from pipelines.data.era5_open import FileCache, release_kept
from pipelines.data.era5_plan import Era5Plan
from pipelines.data.era5_read import Packing
from pipelines.data.grid import LatLonGrid
from pipelines.data.lean_imports import block_unused
from pipelines.data.regrid import Regridder
from pipelines.data.regrid_backends import make_regridder
from pipelines.data.remote import RemoteZarr, bytes_fetched
from pipelines.data.valid_range import check_range
from pipelines.errors import DchagError

SMALL_INPUT_BYTES = 64 * 2**20  # below this, starting workers costs more than it saves


def auto_workers(paths: list[Path]) -> int:
    """Worker processes for `--workers 0`: the cores available, or one for small inputs
    and for remote stores (their chunks are fetched concurrently by one process)."""
    if any(isinstance(p, RemoteZarr) for p in paths):
        return 1
    total = sum(_size(Path(p)) for p in paths)
    return 1 if total < SMALL_INPUT_BYTES else available_cores()


def _size(path: Path) -> int:
    """Bytes of a file, or of a zarr store's chunk files."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read_groups(plan: Era5Plan) -> dict[tuple[int, str], list[int]]:
    """Channels read together: one variable from one file (constant fields apart)."""
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for c, ch in enumerate(plan.channels):
        if VARIABLES[ch.variable].constant:
            continue
        for fid in np.unique(plan.file_of[c]):
            groups[(int(fid), ch.variable)].append(c)
    return groups


class BlockReader:
    """Blocks `(t, channel, lat, lon)` of the plan's time axis, on the target grid."""

    def __init__(self, plan: Era5Plan, target: LatLonGrid, method: str, backend: str,
                 weights: Path | None, allow_nan: bool, allow_out_of_range: bool = False):
        self.plan, self.target = plan, target
        self.method, self.backend, self.weights = method, backend, weights
        self.allow_nan = allow_nan
        self.allow_out_of_range = allow_out_of_range
        self.groups = _read_groups(plan)
        self.regridders: dict[bytes, Regridder] = {}
        self.nan_values: dict[str, int] = defaultdict(int)
        self.files = FileCache(2)
        self.constants: dict[int, np.ndarray] = {}  # channel → its field, read once

    def _regridder(self, grid: LatLonGrid) -> Regridder:
        key = grid.lat.tobytes() + b"|" + grid.lon.tobytes()
        if key not in self.regridders:
            self.regridders[key] = make_regridder(grid, self.target, self.method,
                                                  self.backend, self.weights)
        return self.regridders[key]

    def read(self, t0: int, t1: int) -> np.ndarray:
        plan = self.plan
        out = np.full((t1 - t0, len(plan.channels), *self.target.shape), np.nan, np.float32)
        for (fid, var), members in sorted(self.groups.items()):  # each file opened once
            f = plan.files[fid]
            mask = plan.file_of[members[0], t0:t1] == fid
            if not mask.any():
                continue
            local = plan.local_time[members[0], t0:t1][mask]
            levels = None
            if plan.channels[members[0]].level is not None:
                levels = [int(plan.level_index[c, fid]) for c in members]
            regridder = self._regridder(f.grid)
            kernel = regridder.kernel
            rows = kernel.rows if kernel is not None else None
            raw, packing = f.read_raw(var, local, levels, self.files, rows)
            if levels is None:
                raw = raw[:, None]  # (t, members, rows, lon)
            fields = self._regrid(raw, packing, regridder, f.units[var], members, f.path,
                                  plan.times[t0:t1][mask])
            out[np.flatnonzero(mask)[:, None], np.array(members)[None, :]] = fields
        for c in range(len(plan.channels)):
            if VARIABLES[plan.channels[c].variable].constant:
                out[:, c] = self._constant(c)
        return out

    def _constant(self, c: int) -> np.ndarray:
        """A constant field on the target grid: `lat` from the grid, the others regridded
        from their file's first time, once per reader."""
        if c not in self.constants:
            ch, fid = self.plan.channels[c], int(self.plan.file_of[c, 0])
            if VARIABLES[ch.variable].computed:  # `lat`, the only computed field
                field = np.broadcast_to(self.target.lat[:, None], self.target.shape)
            else:
                f = self.plan.files[fid]
                regridder = self._regridder(f.grid)
                rows = regridder.kernel.rows if regridder.kernel is not None else None
                raw, packing = f.read_raw(ch.variable, np.zeros(1, np.int64), None,
                                          self.files, rows)
                field = self._regrid(raw[:, None], packing, regridder, f.units[ch.variable],
                                     [c], f.path, f.times[:1] if f.times.size else
                                     np.array(["NaT"], "datetime64[ns]"))[0, 0]
            self.constants[c] = np.asarray(field, np.float32)
        return self.constants[c]

    def _regrid(self, raw: np.ndarray, packing: Packing, regridder: Regridder, unit,
                members: list[int], path: Path, times: np.ndarray) -> np.ndarray:
        t, m = raw.shape[:2]
        kernel = regridder.kernel
        flat = raw.reshape(t * m, -1)
        x = kernel.gather_points(flat, from_rows=True) if kernel is not None else flat
        bad = packing.invalid(x)
        if bad.any():
            self._missing(bad.reshape(t, m, -1), _kind(x[bad]), members, path, times)
        after = regridder.preserves_constants  # unpacking and units commute with the regrid
        values = packing.values(x).astype(np.float32)
        if bad.any():
            values[bad] = np.nan
        if not after:
            values = _physical(values, packing, unit)
        if not self.allow_out_of_range:  # the decoded inputs: a regrid would blur one away
            decoded = (_physical(values, packing, unit) if after else values).reshape(t, m, -1)
            for j, c in enumerate(members):
                ch = self.plan.channels[c]
                check_range(decoded[:, j], ch.variable, ch.name, times, path)
        if kernel is not None:
            fields = kernel.apply_points(values)
        else:
            fields = regridder.apply(values.reshape(t * m, *regridder.source_shape))
        fields = np.asarray(fields, np.float32).reshape(t, m, *self.target.shape)
        return _physical(fields, packing, unit) if after else fields

    def _missing(self, bad: np.ndarray, kind: str, members: list[int], path: Path,
                 times: np.ndarray) -> None:
        """Missing or non-finite values among the points the regrid reads: an error, or
        (--allow-nan) kept as NaN and counted."""
        if not self.allow_nan:
            t, k = np.argwhere(bad.any(axis=2))[0]
            ch = self.plan.channels[members[k]]
            raise DchagError(f"{ch.name} at {str(times[t])[:19]} has {int(bad[t, k].sum())} "
                             f"{kind} values", path=path,
                             fix="fix the input, or pass --allow-nan to keep and count them")
        for j, c in enumerate(members):
            self.nan_values[self.plan.channels[c].name] += int(bad[:, j].sum())

    def close(self) -> None:
        self.files.close()


def _physical(x: np.ndarray, packing: Packing, unit) -> np.ndarray:
    """Unpacked (scale, offset) and converted to the store's unit: both affine, so this
    runs before or after the regrid alike."""
    x = packing.unpack(x)
    return x if unit.identity else x * np.float32(unit.scale) + np.float32(unit.offset)


def _kind(values: np.ndarray) -> str:
    """How to name the bad values found: NaN, non-finite, or missing (fill values)."""
    if values.dtype.kind != "f":
        return "missing (fill)"
    if np.isnan(values).all():
        return "NaN"
    if np.isfinite(values).any():
        return "missing (fill or non-finite)"
    return "non-finite (NaN or ±inf)"


# --- parallel reading: worker processes that keep one BlockReader each ----------------
_READERS: dict[str, BlockReader] = {}


def _start_worker(xesmf: bool = False) -> None:
    """Ctrl-C is the main process's to handle; and a worker must not outlive it (a
    `kill -9` of the prep leaves no decoding process behind, Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # not the main process's handler (fork)
        signal.signal(sig, signal.SIG_DFL)
    if not xesmf:
        block_unused()  # this process lives for one prep only
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool ends its workers itself
        pass


def _counting(fn, item):
    """`fn(item)` in a worker, with the bytes it fetched from remote stores."""
    before = bytes_fetched()
    return fn(item), bytes_fetched() - before


def _read_in_worker(setup: str, t0: int, t1: int
                    ) -> tuple[np.ndarray, dict[str, int], int]:
    """Read one block in a worker; its reader is built once from the pickled setup.
    Returns the block, the missing values counted and the bytes fetched from remote
    stores."""
    if setup not in _READERS:
        with open(setup, "rb") as fh:
            _READERS[setup] = BlockReader(*pickle.load(fh))
    reader = _READERS[setup]
    before, fetched = dict(reader.nan_values), bytes_fetched()
    block = reader.read(t0, t1)
    counted = {k: v - before.get(k, 0) for k, v in reader.nan_values.items()}
    return block, counted, bytes_fetched() - fetched


class DecodePool:
    """`workers` processes for the whole prep: describing the input files, then decoding
    and regridding time blocks. One process: everything runs here, no pool."""

    def __init__(self, workers: int, xesmf: bool = False):
        self.workers = max(1, workers)
        self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                        initializer=_start_worker, initargs=(xesmf,)) \
            if self.workers > 1 else None
        self._tmp = tempfile.TemporaryDirectory(prefix="dchag-prep-")
        self.fetched_in_workers = 0  # bytes the workers fetched from remote stores

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc) -> None:
        release_kept()  # described files kept open here that no read took
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._tmp.cleanup()

    def map(self, fn, items: list) -> list:
        if self.pool is None:
            return [fn(x) for x in items]
        results = list(self.pool.map(functools.partial(_counting, fn), items))
        self.fetched_in_workers += sum(n for _, n in results)
        return [r for r, _ in results]

    def blocks(self, reader: BlockReader, n_times: int, block: int
               ) -> Iterator[tuple[int, int, np.ndarray]]:
        """(t0, t1, block) in time order; at most two blocks per worker in flight."""
        spans = [(t0, min(t0 + block, n_times)) for t0 in range(0, n_times, block)]
        if self.pool is None or len(spans) == 1:
            for t0, t1 in spans:
                yield t0, t1, reader.read(t0, t1)
            return
        setup = str(Path(self._tmp.name) / f"reader-{id(reader)}.pickle")
        with open(setup, "wb") as fh:
            pickle.dump((reader.plan, reader.target, reader.method, reader.backend,
                         reader.weights, reader.allow_nan, reader.allow_out_of_range), fh)
        it = iter(spans)
        pending: list[tuple[int, int, Future]] = [
            (t0, t1, self.pool.submit(_read_in_worker, setup, t0, t1))
            for t0, t1 in itertools.islice(it, 2 * self.workers)]
        while pending:
            t0, t1, fut = pending.pop(0)
            data, counted, fetched = fut.result()
            self.fetched_in_workers += fetched
            for name, n in counted.items():
                reader.nan_values[name] += n
            nxt = next(it, None)
            if nxt is not None:
                pending.append((*nxt, self.pool.submit(_read_in_worker, setup, *nxt)))
            yield t0, t1, data
