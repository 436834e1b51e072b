"""`prep era5`: ERA5 netCDF → regridded, normalisable `era5.zarr`.

Layout of the artifact (zarr format 2, readable by `xarray.open_zarr`):
    data(time, channel, lat, lon) float32, one chunk per time step
    time, channel, lat, lon       coordinates (lat south→north, lon 0→360)
    mean(channel), std(channel)   over the training years
    climatology(dayofyear, channel, lat, lon)  smoothed day-of-year mean, for ACC
    stats_*, clim_sum, clim_count running sums that make `--append` exact
    attrs: dchag_artifact="era5", channels, grid, regrid, train_years, provenance, history
"""

from __future__ import annotations

import time as _time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numcodecs
import numpy as np
import zarr

from pipelines.data.channels import Channel, resolve_channels
from pipelines.data.era5_plan import Era5Plan, make_plan
from pipelines.data.era5_read import expand_sources, open_era5
from pipelines.data.era5_stats import N_DOY, RunningStats, in_years
from pipelines.data.grid import LatLonGrid, weatherbench_grid
from pipelines.data.regrid import Regridder
from pipelines.data.regrid_backends import make_regridder
from pipelines.data.zarr_store import (
    atomic_store,
    check_writable_target,
    dims_array,
    open_artifact,
    store_bytes,
)
from pipelines.errors import DchagError
from pipelines.progress import NoProgress, Progress
from pipelines.provenance import provenance

HOURS = np.timedelta64(1, "h")
EPOCH = np.datetime64("1970-01-01T00", "h")
COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


@dataclass
class Era5PrepConfig:
    sources: list[Path]
    out: Path
    preset: str | None = None
    channels: str | None = None
    method: str = "bilinear"
    backend: str = "native"
    weights: Path | None = None
    resolution: float = 5.625
    train_years: tuple[int, int] | None = None
    clim_window: int = 15
    allow_nan: bool = False
    append: bool = False
    overwrite: bool = False
    block: int = 16

    def to_attrs(self) -> dict:
        d = asdict(self)
        d["sources"] = [str(p) for p in self.sources]
        d["out"] = str(self.out)
        d["weights"] = str(self.weights) if self.weights else None
        return d


@dataclass
class PrepSummary:
    out: Path
    channels: int
    times: int
    new_times: int
    bytes: int
    seconds: float
    nan_values: dict[str, int] = field(default_factory=dict)

    @property
    def fields_per_s(self) -> float:
        return self.new_times * self.channels / max(self.seconds, 1e-9)


def parse_years(text: str | None) -> tuple[int, int] | None:
    """`1979:2015` → (1979, 2015); `2018` → (2018, 2018)."""
    if not text:
        return None
    a, _, b = text.partition(":")
    try:
        years = (int(a), int(b or a))
    except ValueError as exc:
        raise DchagError(f"--train-years {text!r} is not YEAR or FIRST:LAST") from exc
    if years[0] > years[1]:
        raise DchagError(f"--train-years {text!r}: first year after last")
    return years


def _hours(times: np.ndarray) -> np.ndarray:
    h = (times.astype("datetime64[s]") - EPOCH) / HOURS
    if not np.allclose(h, np.round(h)):
        raise DchagError("time steps are not whole hours", fix="ERA5 is hourly; check the inputs")
    return np.round(h).astype(np.int64)


def _read_groups(plan: Era5Plan) -> dict[tuple[int, str], list[int]]:
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for c, ch in enumerate(plan.channels):
        for fid in np.unique(plan.file_of[c]):
            groups[(int(fid), ch.variable)].append(c)
    return groups


class _BlockReader:
    """Reads and regrids blocks of time steps for all channels, grouped by file and variable."""

    def __init__(self, plan: Era5Plan, target: LatLonGrid, cfg: Era5PrepConfig):
        self.plan, self.target, self.cfg = plan, target, cfg
        self.groups = _read_groups(plan)
        self.regridders: dict[bytes, Regridder] = {}
        self.nan_values: dict[str, int] = defaultdict(int)

    def _regridder(self, grid: LatLonGrid) -> Regridder:
        key = grid.lat.tobytes() + b"|" + grid.lon.tobytes()
        if key not in self.regridders:
            self.regridders[key] = make_regridder(grid, self.target, self.cfg.method,
                                                  self.cfg.backend, self.cfg.weights)
        return self.regridders[key]

    def read(self, t0: int, t1: int) -> np.ndarray:
        plan = self.plan
        out = np.full((t1 - t0, len(plan.channels), *self.target.shape), np.nan, np.float32)
        for (fid, var), members in self.groups.items():
            f = plan.files[fid]
            mask = plan.file_of[members[0], t0:t1] == fid
            if not mask.any():
                continue
            local = plan.local_time[members[0], t0:t1][mask]
            levels = None
            if plan.channels[members[0]].level is not None:
                levels = [int(plan.level_index[c, fid]) for c in members]
            raw = f.read(var, local, levels)  # (t, [nlev,] lat, lon)
            if levels is None:
                raw = raw[:, None]
            self._check_nan(raw, members, f.path, plan.times[t0:t1][mask])
            out[np.flatnonzero(mask)[:, None], np.array(members)[None, :]] = \
                self._regridder(f.grid).apply(raw)
        return out

    def _check_nan(self, raw: np.ndarray, members: list[int], path: Path,
                   times: np.ndarray) -> None:
        bad = np.isnan(raw)
        if not bad.any():
            return
        t, k = np.argwhere(bad.any(axis=(2, 3)))[0]
        ch = self.plan.channels[members[k]]
        if not self.cfg.allow_nan:
            raise DchagError(f"{ch.name} at {str(times[t])[:19]} has {int(bad[t, k].sum())} "
                             "NaN values", path=path,
                             fix="fix the input, or pass --allow-nan to keep and count them")
        for j, c in enumerate(members):
            self.nan_values[self.plan.channels[c].name] += int(bad[:, j].sum())


def _create_arrays(g: zarr.Group, channels: list[Channel], target: LatLonGrid) -> None:
    c = len(channels)
    h, w = target.shape
    dims_array(g, "data", ["time", "channel", "lat", "lon"], shape=(0, c, h, w),
               chunks=(1, c, h, w), dtype="f4", fill_value=np.nan, compressors=COMPRESSOR)
    t = dims_array(g, "time", ["time"], shape=(0,), chunks=(4096,), dtype="i8",
                   fill_value=None)
    t.attrs.update({"units": "hours since 1970-01-01", "calendar": "proleptic_gregorian",
                    "standard_name": "time"})
    ch = dims_array(g, "channel", ["channel"], shape=(c,), dtype="<U24", fill_value=None)
    ch[:] = np.array([x.name for x in channels])
    units = dims_array(g, "units", ["channel"], shape=(c,), dtype="<U24", fill_value=None)
    units[:] = np.array([x.units for x in channels])
    for name, values, attrs in (("lat", target.lat, {"units": "degrees_north"}),
                                ("lon", target.lon, {"units": "degrees_east"})):
        a = dims_array(g, name, [name], shape=values.shape, dtype="f8", fill_value=None)
        a[:] = values
        a.attrs.update(attrs)


def _write_stats(g: zarr.Group, stats: RunningStats, window: int) -> None:
    mean, std = stats.mean_std()
    for name, arr, dims in (
        ("mean", mean, ["channel"]), ("std", std, ["channel"]),
        ("stats_sum", stats.total, ["channel"]), ("stats_sumsq", stats.total_sq, ["channel"]),
        ("stats_count", stats.count, ["channel"]),
        ("climatology", stats.climatology(window), ["dayofyear", "channel", "lat", "lon"]),
        ("clim_sum", stats.clim_sum, ["dayofyear", "channel", "lat", "lon"]),
        ("clim_count", stats.clim_count, ["dayofyear", "channel", "lat", "lon"]),
    ):
        chunks = (1, *arr.shape[1:]) if arr.ndim == 4 else arr.shape
        if name in g:
            g[name][:] = arr
        else:
            dims_array(g, name, dims, shape=arr.shape, chunks=chunks, dtype=arr.dtype,
                       fill_value=None, compressors=COMPRESSOR)[:] = arr
    if "dayofyear" not in g:
        dims_array(g, "dayofyear", ["dayofyear"], shape=(N_DOY,), dtype="i4",
                   fill_value=None)[:] = np.arange(1, N_DOY + 1)


def _check_append_compatible(g: zarr.Group, channels: list[Channel], target: LatLonGrid,
                             cfg: Era5PrepConfig, new_times: np.ndarray) -> None:
    names = [c.name for c in channels]
    if list(g.attrs["channels"]) != names:
        raise DchagError(f"channels differ from the store's ({len(g.attrs['channels'])} "
                         f"channels: {', '.join(g.attrs['channels'][:5])}…)", path=cfg.out,
                         fix="append with the same --channels/--preset, or write a new store")
    if g.attrs["grid"] != target.describe() or g.attrs["regrid"]["method"] != cfg.method:
        raise DchagError("grid or regrid method differs from the store's", path=cfg.out,
                         fix="append with the same --resolution and --method")
    old = g["time"][:]
    if old.size and _hours(new_times).min() <= old.max():
        raise DchagError("new times overlap the store's (last stored "
                         f"{EPOCH + int(old.max()) * HOURS!s})", path=cfg.out,
                         fix="append only times after the last stored one")


def prep_era5(cfg: Era5PrepConfig, progress: Progress | None = None) -> PrepSummary:
    progress = progress or NoProgress()
    started = _time.perf_counter()
    channels = resolve_channels(cfg.preset, cfg.channels)
    target = weatherbench_grid(cfg.resolution)
    if cfg.append:
        if not cfg.out.exists():
            raise DchagError("--append needs an existing store", path=cfg.out)
        existing = open_artifact(cfg.out, "era5", mode="r+")
        stored_years = existing.attrs.get("train_years")
        if cfg.train_years is not None and list(cfg.train_years) != stored_years:
            raise DchagError(f"--train-years differs from the store's {stored_years}",
                             path=cfg.out, fix="omit --train-years when appending")
        cfg.train_years = tuple(stored_years) if stored_years else None
    else:
        check_writable_target(cfg.out, overwrite=cfg.overwrite)
    with expand_sources(cfg.sources) as paths:
        files = [open_era5(p) for p in paths]
        try:
            plan = make_plan(files, channels)
            reader = _BlockReader(plan, target, cfg)
            if cfg.append:
                _check_append_compatible(existing, channels, target, cfg, plan.times)
                _write_times(existing, plan, reader, cfg, progress, append=True)
            else:
                with atomic_store(cfg.out) as g:
                    _create_arrays(g, channels, target)
                    g.attrs.update({
                        "dchag_artifact": "era5",
                        "channels": [c.name for c in channels],
                        "grid": target.describe(),
                        "regrid": {"method": cfg.method, "backend": cfg.backend,
                                   "weights": str(cfg.weights) if cfg.weights else None},
                        "train_years": list(cfg.train_years) if cfg.train_years else None,
                        "clim_window_days": cfg.clim_window,
                    })
                    _write_times(g, plan, reader, cfg, progress, append=False)
                    g.attrs["provenance"] = provenance("prep era5", cfg.to_attrs(), paths)
                    g.attrs["history"] = []
            if cfg.append:
                hist = list(existing.attrs.get("history", []))
                hist.append(provenance("prep era5 --append", cfg.to_attrs(), paths))
                existing.attrs["history"] = hist
                zarr.consolidate_metadata(str(cfg.out))
        finally:
            for f in files:
                f.ds.close()
    total_times = open_artifact(cfg.out, "era5")["time"].shape[0]
    return PrepSummary(out=cfg.out, channels=len(channels), times=total_times,
                       new_times=plan.times.size, bytes=store_bytes(cfg.out),
                       seconds=_time.perf_counter() - started,
                       nan_values=dict(reader.nan_values))


def _write_times(g: zarr.Group, plan: Era5Plan, reader: _BlockReader, cfg: Era5PrepConfig,
                 progress: Progress, append: bool) -> None:
    """Stream blocks of time steps into the store; on failure an append is rolled back."""
    data, time_arr = g["data"], g["time"]
    n_old = time_arr.shape[0]
    n_new = plan.times.size
    stats = RunningStats.load(g) if append else RunningStats.zeros(len(plan.channels),
                                                                   reader.target.shape)
    train = in_years(plan.times, cfg.train_years)
    progress.start(n_new, f"regridding {len(plan.channels)} channels × {n_new} times")
    try:
        data.resize((n_old + n_new, *data.shape[1:]))
        for t0 in range(0, n_new, cfg.block):
            t1 = min(t0 + cfg.block, n_new)
            block = reader.read(t0, t1)
            data[n_old + t0:n_old + t1] = block
            keep = train[t0:t1]
            if keep.any():
                stats.update(plan.times[t0:t1][keep], block[keep])
            progress.advance(t1 - t0)
        if not append and stats.count.min() == 0:
            raise DchagError(f"no time step falls inside --train-years {cfg.train_years}",
                             fix="choose years the inputs cover (or omit --train-years)")
        time_arr.resize((n_old + n_new,))
        time_arr[n_old:] = _hours(plan.times)
        _write_stats(g, stats, cfg.clim_window)
    except BaseException:
        if append:
            data.resize((n_old, *data.shape[1:]))
            time_arr.resize((n_old,))
        raise
