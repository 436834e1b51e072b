"""`prep era5`: ERA5 netCDF → regridded, normalisable `era5.zarr`.

Layout of the artifact (zarr format 2, readable by `xarray.open_zarr`):
    data(time, channel, lat, lon) float32, one chunk per time step, ERA5's units
    time, channel, lat, lon       coordinates (lat south→north, lon 0→360)
    mean(channel), std(channel)   over the training years
    stats_sum, stats_sumsq, stats_count (time, channel)  per-step sums: exact mean/std
                                  over any period, and exact appends
    climatology(dayofyear, hour, channel, lat, lon)  WeatherBench-2-style, for ACC
    clim_sum, clim_count          its running sums
    attrs: dchag_artifact="era5", channels, grid, regrid, train_years, provenance, history

Every input is checked before anything is written: units (converted where that is
unambiguous), finite values, a grid covering the target, whole-hour times. A new store
is written atomically; `--append` is a transaction over every array it touches.
"""

from __future__ import annotations

import functools
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numcodecs
import numpy as np
import zarr

from pipelines.data.channels import VARIABLES, Channel, resolve_channels
from pipelines.data.era5_blocks import BlockReader, DecodePool, auto_workers
from pipelines.data.era5_dry_run import source_read
from pipelines.data.era5_plan import Era5Plan, make_plan
from pipelines.data.era5_read import Era5File, expand_sources, open_era5
from pipelines.data.era5_stats import (
    DEFAULT_HOUR_STEP,
    DEFAULT_WINDOW,
    Climatology,
    field_sums,
    in_years,
    mean_std,
)
from pipelines.data.grid import LatLonGrid, check_covers, parse_region, target_grid
from pipelines.data.lean_imports import without_unused
from pipelines.data.remote import RemoteZarr, bytes_fetched
from pipelines.data.times import EPOCH, period_hours
from pipelines.data.zarr_store import (
    atomic_store,
    check_writable_target,
    dims_array,
    open_artifact,
    store_bytes,
    store_transaction,
)
from pipelines.errors import DchagError
from pipelines.faults import fault_point
from pipelines.guard import check_no_overlap
from pipelines.limits import worker_processes
from pipelines.locks import write_lock
from pipelines.notes import note
from pipelines.progress import NoProgress, Progress
from pipelines.provenance import provenance

HOURS = np.timedelta64(1, "h")
COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)
PER_STEP = ("stats_sum", "stats_sumsq", "stats_count")


@dataclass
class Era5PrepConfig:
    sources: list[Path | RemoteZarr]
    out: Path
    preset: str | None = None
    channels: str | None = None
    method: str = "bilinear"
    backend: str = "native"
    weights: Path | None = None
    resolution: float = 5.625
    region: str | None = None
    train_years: tuple[int, int] | None = None
    clim_window: int = DEFAULT_WINDOW
    clim_hour_step: int = DEFAULT_HOUR_STEP
    allow_nan: bool = False
    allow_out_of_range: bool = False  # keep values outside a variable's physical range
    append: bool = False
    overwrite: bool = False
    block: int = 16
    workers: int = 0  # decoding processes; 0: the cores available (1 for small inputs)
    period: str | None = None  # only these times (`2018`, `2018-01:2018-03`, …)
    member: int | None = None  # the ensemble member, for inputs with a `number` dimension
    constants: list[Path] = field(default_factory=list)  # files of constant fields

    def __post_init__(self) -> None:
        if not 1 <= self.clim_window <= 365 or self.clim_window % 2 == 0:
            raise DchagError(f"--clim-window {self.clim_window}: the climatology window is "
                             "an odd number of days from 1 to 365", fix="WeatherBench 2 uses 61")
        if self.clim_hour_step < 1 or 24 % self.clim_hour_step:
            raise DchagError(f"--clim-hour-step {self.clim_hour_step} must divide 24",
                             fix="use 6 (00, 06, 12, 18 UTC, as WeatherBench 2) or 1, 3, 12")
        if self.block < 1:
            raise DchagError(f"block size {self.block} must be at least 1")
        if self.workers < 0:
            raise DchagError(f"--workers {self.workers} must be 0 (the cores available) or "
                             "more")

    def to_attrs(self) -> dict:
        d = asdict(self)
        d["sources"] = [str(p) for p in self.sources]
        d["constants"] = [str(p) for p in self.constants]
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
    workers: int = 1  # decoding processes used
    fetched_bytes: int = 0  # from remote stores, compressed, as transferred
    selected_bytes: int = 0  # the remote fields read, decoded as float32

    @property
    def fields_per_s(self) -> float:
        return self.new_times * self.channels / max(self.seconds, 1e-9)


def _hours(times: np.ndarray) -> np.ndarray:
    return ((times.astype("datetime64[s]") - EPOCH) // HOURS).astype(np.int64)


def _create_arrays(g: zarr.Group, channels: list[Channel], target: LatLonGrid,
                   cfg: Era5PrepConfig) -> None:
    c = len(channels)
    h, w = target.shape
    by_channel = {x.name: x.units for x in channels}
    data = dims_array(g, "data", ["time", "channel", "lat", "lon"], shape=(0, c, h, w),
                      chunks=(1, c, h, w), dtype="f4", fill_value=np.nan,
                      compressors=COMPRESSOR)
    # One array holds channels of different units: CF's single `units` cannot say that, so
    # each channel's unit is the `channel_units` coordinate (and `units_by_channel`).
    data.attrs.update({"long_name": "ERA5 fields on the regular grid, one per channel",
                       "units_by_channel": by_channel, "coordinates": "channel_units"})
    t = dims_array(g, "time", ["time"], shape=(0,), chunks=(4096,), dtype="i8",
                   fill_value=None)
    t.attrs.update({"units": "hours since 1970-01-01", "calendar": "proleptic_gregorian",
                    "standard_name": "time"})
    long_names = {"stats_sum": "sum of the field at each time step",
                  "stats_sumsq": "sum of squares of the field at each time step",
                  "stats_count": "finite grid points at each time step"}
    for name, dtype in zip(PER_STEP, ("f8", "f8", "i8"), strict=True):
        dims_array(g, name, ["time", "channel"], shape=(0, c), chunks=(4096, c), dtype=dtype,
                   fill_value=None).attrs["long_name"] = long_names[name]
    for name in ("mean", "std"):
        dims_array(g, name, ["channel"], shape=(c,), dtype="f8", fill_value=None
                   ).attrs.update({"long_name": f"{name} over the store's statistics years",
                                   "coordinates": "channel_units"})
    ch = dims_array(g, "channel", ["channel"], shape=(c,), dtype="<U24", fill_value=None)
    ch[:] = np.array([x.name for x in channels])
    ch.attrs["long_name"] = "variable and pressure level (hPa)"
    units = dims_array(g, "channel_units", ["channel"], shape=(c,), dtype="<U24",
                       fill_value=None)
    units[:] = np.array([x.units for x in channels])
    units.attrs["long_name"] = "units of each channel (CF/ECMWF spelling)"
    for name, values, attrs in (
            ("lat", target.lat, {"units": "degrees_north", "standard_name": "latitude",
                                 "long_name": "latitude"}),
            ("lon", target.lon, {"units": "degrees_east", "standard_name": "longitude",
                                 "long_name": "longitude"})):
        a = dims_array(g, name, [name], shape=values.shape, dtype="f8", fill_value=None)
        a[:] = values
        a.attrs.update(attrs)
    Climatology.create(g, c, target.shape, cfg.clim_hour_step, dims_array)


def _check_append_compatible(g: zarr.Group, channels: list[Channel], target: LatLonGrid,
                             cfg: Era5PrepConfig, new_times: np.ndarray) -> None:
    names = [c.name for c in channels]
    if list(g.attrs["channels"]) != names:
        raise DchagError(f"channels differ from the store's ({len(g.attrs['channels'])} "
                         f"channels: {', '.join(g.attrs['channels'][:5])}…)", path=cfg.out,
                         fix="append with the same --channels/--preset, or write a new store")
    if g.attrs["grid"] != target.describe() or g.attrs["regrid"]["method"] != cfg.method:
        raise DchagError("grid or regrid method differs from the store's", path=cfg.out,
                         fix="append with the same --resolution, --region and --method")
    if "stats_sum" not in g or g["stats_sum"].ndim != 2 or "hour" not in g:
        raise DchagError("the store was written by an older dchag (daily climatology, no "
                         "per-step statistics) and cannot be appended to", path=cfg.out,
                         fix="prepare a new store from all the inputs")
    old = g["time"][:]
    if old.size and _hours(new_times).min() <= old.max():
        raise DchagError("new times overlap the store's (last stored "
                         f"{EPOCH + int(old.max()) * HOURS!s})", path=cfg.out,
                         fix="append only times after the last stored one")


def _check_grids(files: list[Era5File], target: LatLonGrid, regional: bool) -> None:
    for f in files:
        check_covers(f.grid, target, f.path, regional)


def remote_selected_bytes(plan: Era5Plan) -> int:
    """Bytes of the fields read from remote stores, as float32 on their native grid: what
    the fetched (compressed, whole-chunk) bytes compare with."""
    return sum(source_read(plan, fid).field_bytes for fid, f in enumerate(plan.files)
               if isinstance(f.path, RemoteZarr))


def _note_units(files: list[Era5File]) -> None:
    seen: set[tuple[str, str]] = set()
    for f in files:
        for var, conv in f.units.items():
            key = (var, conv.found)
            if key in seen:
                continue
            seen.add(key)
            if not conv.found:
                note(f"{f.path.name}: {var} has no units attribute; taken as ERA5's own")
            elif not conv.identity:
                note(f"{f.path.name}: {var} in {conv.found!r} converted "
                     f"(× {conv.scale:g} + {conv.offset:g})")


def prep_era5(cfg: Era5PrepConfig, progress: Progress | None = None) -> PrepSummary:
    progress = progress or NoProgress()
    started = _time.perf_counter()
    fetched_before = bytes_fetched()
    channels = resolve_channels(cfg.preset, cfg.channels)
    region = parse_region(cfg.region)
    target = target_grid(cfg.resolution, region)
    inputs = [*cfg.sources, *cfg.constants]
    # as given, folders too: a store inside an input folder would be read back as an input
    # by the next prep (the expanded files are checked again below)
    check_no_overlap(cfg.out, inputs)
    if not cfg.append:
        check_writable_target(cfg.out, overwrite=cfg.overwrite, kinds=("era5",))
    elif not cfg.out.exists():
        raise DchagError("--append needs an existing store", path=cfg.out)
    with without_unused(needed=cfg.backend == "xesmf"), write_lock(cfg.out), \
            expand_sources(inputs) as paths, \
            DecodePool(min(worker_processes(cfg.workers) or auto_workers(paths), len(paths)),
                       xesmf=cfg.backend == "xesmf") as pool:
        check_no_overlap(cfg.out, paths)
        if cfg.append:
            existing = open_artifact(cfg.out, "era5")
            stored_years = existing.attrs.get("train_years")
            if cfg.train_years is not None and list(cfg.train_years) != stored_years:
                raise DchagError(f"--train-years differs from the store's {stored_years}",
                                 path=cfg.out, fix="omit --train-years when appending")
            cfg.train_years = tuple(stored_years) if stored_years else None
            cfg.clim_window = int(existing.attrs.get("clim_window_days", cfg.clim_window))
        progress.start(len(paths), f"checking {len(paths)} input files")
        files = pool.map(functools.partial(open_era5, member=cfg.member, keep_open=True),
                         paths)
        progress.advance(len(paths))
        if cfg.member is not None and all(f.member is None for f in files):
            raise DchagError(f"--member {cfg.member}: no input holds ensemble members (no "
                             "`number` dimension)", path=files[0].path,
                             fix="drop --member: these files are one deterministic series")
        plan = make_plan(files, channels,
                         period_hours(cfg.period) if cfg.period is not None else None)
        _check_grids(files, target, region is not None)
        _note_units(files)
        reader = BlockReader(plan, target, cfg.method, cfg.backend, cfg.weights,
                             cfg.allow_nan, cfg.allow_out_of_range)
        try:
            if cfg.append:
                with store_transaction(cfg.out) as g:
                    _check_append_compatible(g, channels, target, cfg, plan.times)
                    _write_times(g, plan, reader, pool, cfg, progress)
                    hist = list(g.attrs.get("history", []))
                    hist.append(provenance("prep era5 --append", cfg.to_attrs(), paths))
                    g.attrs["history"] = hist
                    if any(f.synthetic for f in files):
                        g.attrs["synthetic"] = True
            else:
                with atomic_store(cfg.out) as g:
                    _create_arrays(g, channels, target, cfg)
                    g.attrs.update({
                        "dchag_artifact": "era5",
                        "channels": [c.name for c in channels],
                        "constant_channels": [c.name for c in channels
                                              if VARIABLES[c.variable].constant],
                        "grid": target.describe(),
                        "region": list(region) if region else None,
                        "regrid": {"method": cfg.method, "backend": cfg.backend,
                                   "weights": str(cfg.weights) if cfg.weights else None},
                        "train_years": list(cfg.train_years) if cfg.train_years else None,
                        # from `dchag sample era5`: scores on it are not ERA5 skill
                        "synthetic": any(f.synthetic for f in files),
                        "clim_window_days": cfg.clim_window,
                        "climatology": "WeatherBench 2: per day of year and hour, "
                                       f"{cfg.clim_window}-day triangular window",
                    })
                    _write_times(g, plan, reader, pool, cfg, progress)
                    g.attrs["provenance"] = provenance("prep era5", cfg.to_attrs(), paths)
                    g.attrs["history"] = []
        finally:
            reader.close()
    total_times = open_artifact(cfg.out, "era5")["time"].shape[0]
    fetched = bytes_fetched() - fetched_before + pool.fetched_in_workers
    return PrepSummary(fetched_bytes=fetched, selected_bytes=remote_selected_bytes(plan),
                       out=cfg.out, channels=len(channels), times=total_times,
                       new_times=plan.times.size, bytes=store_bytes(cfg.out),
                       seconds=_time.perf_counter() - started,
                       nan_values=dict(reader.nan_values), workers=pool.workers)


def _write_times(g: zarr.Group, plan: Era5Plan, reader: BlockReader, pool: DecodePool,
                 cfg: Era5PrepConfig, progress: Progress) -> None:
    """Stream blocks of time steps into the store (a fresh one or a transaction's clone)."""
    data, time_arr = g["data"], g["time"]
    n_old = time_arr.shape[0]
    n_new = plan.times.size
    per_step = {name: g[name] for name in PER_STEP}
    for a in (data, time_arr, *per_step.values()):
        a.resize((n_old + n_new, *a.shape[1:]))
    time_arr[n_old:] = _hours(plan.times)
    clim = Climatology(g)
    train = in_years(plan.times, cfg.train_years)
    progress.start(n_new, f"regridding {len(plan.channels)} channels × {n_new} times")
    size = max(1, min(cfg.block, -(-n_new // (2 * pool.workers))))  # every worker busy
    for t0, t1, block in pool.blocks(reader, n_new, size):
        data[n_old + t0:n_old + t1] = block
        for name, values in zip(PER_STEP, field_sums(block), strict=True):
            per_step[name][n_old + t0:n_old + t1] = values
        keep = train[t0:t1]
        if keep.any():
            clim.add(plan.times[t0:t1][keep], block[keep])
        fault_point("prep:block-written")
        progress.advance(t1 - t0)
    all_times = (EPOCH + time_arr[:] * HOURS).astype("datetime64[ns]")
    in_train = in_years(all_times, cfg.train_years)
    if not in_train.any():
        raise DchagError(f"no time step falls inside --train-years {cfg.train_years}",
                         fix="choose years the inputs cover (or omit --train-years)")
    mean, std = mean_std(*(per_step[name][:][in_train] for name in PER_STEP))
    g["mean"][:], g["std"][:] = mean, std
    clim.smooth(cfg.clim_window, threads=max(cfg.workers, 2))
