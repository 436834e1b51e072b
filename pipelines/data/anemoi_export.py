"""`era5.zarr` in anemoi-datasets' layout, so anemoi (and its training stack) open it.

anemoi-datasets' gridded layout (zarr format 2, consolidated):
    data(dates, variables, ensembles, values) float32   the grid flattened, one ensemble
    dates(dates) datetime64[s]; latitudes(values), longitudes(values) float64
    mean, stdev, minimum, maximum, sums, squares, count, has_nans (variables)
    attrs: variables, field_shape, frequency, resolution, start_date, end_date,
           missing_dates, statistics_start_date/end_date, constant_fields,
           variables_metadata, data_request, flatten_grid, ensemble_dimension, …

Names follow anemoi's ERA5 datasets: `z_500` as ours, ECMWF's `2t`, `10u`, `10v` for
t2m, u10, v10, and surface geopotential `z` (m² s⁻²) for our orography (m). Statistics
are exact over the store's statistics years: the per-step sums `prep era5` keeps give
sums, squares and counts; minimum and maximum are taken while copying. Times missing
from a regular series become NaN rows listed in `missing_dates`, as anemoi expects.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from pipelines.data.channels import parse_channel
from pipelines.data.era5_stats import in_years
from pipelines.data.times import EPOCH
from pipelines.data.units import G0
from pipelines.data.zarr_store import atomic_store, open_artifact
from pipelines.errors import DchagError
from pipelines.progress import NoProgress, Progress
from pipelines.provenance import provenance

ANEMOI_NAMES = {"t2m": "2t", "u10": "10u", "v10": "10v", "orography": "z", "lat": "latitude"}
# Channels stored in another unit than ours: anemoi's `z` is surface geopotential.
ANEMOI_UNITS = {"orography": ("m**2 s**-2", G0)}  # channel → (units, factor from ours)
BLOCK = 64  # time steps copied at once


@dataclass
class AnemoiSummary:
    out: Path
    dates: int
    variables: int
    missing: int
    frequency_h: int


def anemoi_name(channel: str) -> str:
    return ANEMOI_NAMES.get(channel, channel)


def _frequency(hours: np.ndarray, path: Path) -> int:
    if hours.size < 2:
        raise DchagError("the store holds one time step; anemoi needs a time series",
                         path=path, fix="prepare more time steps")
    steps = np.diff(hours)
    freq = int(steps.min())
    if freq <= 0 or np.any(steps % freq):
        raise DchagError(f"time steps of {sorted(set(steps.tolist()))[:4]} h are not one "
                         "regular series", path=path,
                         fix="prepare a store with evenly spaced times (e.g. every 6 h)")
    return freq


def _variables_metadata(channels: list[str]) -> dict:
    meta = {}
    for name in channels:
        ch = parse_channel(name)
        param = anemoi_name(ch.variable)
        mars = {"param": param, "levtype": "pl" if ch.level is not None else "sfc"}
        if ch.level is not None:
            mars["levelist"] = ch.level
        units = ANEMOI_UNITS[name][0] if name in ANEMOI_UNITS else ch.units
        meta[anemoi_name(name)] = {"mars": mars, "units": units}
    return meta


def _to_anemoi(block: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(t, c, h, w) ours → (t, c, 1, h·w) anemoi's, orography as geopotential."""
    t, c, h, w = block.shape
    out = block.reshape(t, c, 1, h * w) * scale[None, :, None, None]
    return out.astype(np.float32, copy=False)


def export_anemoi(store: Path, out: Path, progress: Progress | None = None) -> AnemoiSummary:
    progress = progress or NoProgress()
    src = open_artifact(store, "era5")
    channels = [str(c) for c in src.attrs["channels"]]
    hours = np.asarray(src["time"][:], np.int64)
    freq = _frequency(hours, store)
    full = np.arange(hours[0], hours[-1] + 1, freq)
    row = np.searchsorted(full, hours)  # where each stored time goes
    missing = np.setdiff1d(full, hours)
    lat, lon = src["lat"][:], src["lon"][:]
    h, w = lat.size, lon.size
    scale = np.array([ANEMOI_UNITS[c][1] if c in ANEMOI_UNITS else 1.0 for c in channels])
    dates = (EPOCH + full * np.timedelta64(1, "h")).astype("datetime64[s]")
    years = src.attrs.get("train_years")
    in_stats = in_years((EPOCH + hours * np.timedelta64(1, "h")).astype("datetime64[ns]"),
                        tuple(years) if years else None)
    if not in_stats.any():
        raise DchagError(f"no time step falls in the store's statistics years {years}",
                         path=store, fix="prepare the store with --train-years it covers")
    sums = (src["stats_sum"][:][in_stats] * scale).sum(axis=0)
    squares = (src["stats_sumsq"][:][in_stats] * scale**2).sum(axis=0)
    count = src["stats_count"][:][in_stats].sum(axis=0)
    mean = sums / np.maximum(count, 1)
    stdev = np.sqrt(np.maximum(squares / np.maximum(count, 1) - mean**2, 0.0))
    minimum = np.full(len(channels), np.inf)
    maximum = np.full(len(channels), -np.inf)
    has_nans = np.zeros(len(channels), bool)
    tendency = _Tendency(len(channels))  # x(t + frequency) − x(t), as anemoi's recipes
    names = [anemoi_name(c) for c in channels]
    with atomic_store(out) as g:
        data = g.create_array("data", shape=(full.size, len(channels), 1, h * w),
                              chunks=(1, len(channels), 1, h * w), dtype="f4",
                              fill_value=np.nan)  # rows of missing dates stay NaN
        progress.start(hours.size, f"writing {len(channels)} variables × {hours.size} dates")
        for t0 in range(0, hours.size, BLOCK):
            t1 = min(t0 + BLOCK, hours.size)
            block = _to_anemoi(src["data"][t0:t1], scale)
            data[row[t0:t1]] = block
            has_nans |= np.isnan(block).any(axis=(0, 2, 3))
            keep = in_stats[t0:t1]
            tendency.add(block, hours[t0:t1], keep, freq)
            if keep.any():
                minimum = np.fmin(minimum, np.nanmin(block[keep], axis=(0, 2, 3)))
                maximum = np.fmax(maximum, np.nanmax(block[keep], axis=(0, 2, 3)))
            progress.advance(t1 - t0)
        lats, lons = np.meshgrid(lat, lon, indexing="ij")
        for name, values in (("dates", dates), ("latitudes", lats.ravel().astype(np.float64)),
                             ("longitudes", lons.ravel().astype(np.float64)),
                             ("mean", mean), ("stdev", stdev), ("minimum", minimum),
                             ("maximum", maximum), ("sums", sums), ("squares", squares),
                             ("count", count.astype(np.int64)), ("has_nans", has_nans),
                             *tendency.arrays(f"statistics_tendencies_{freq}h_")):
            g.create_array(name, shape=values.shape, dtype=values.dtype,
                           fill_value=None)[:] = values
        stat_times = dates[row[in_stats]]
        iso = [str(d) for d in (dates[0], dates[-1], stat_times[0], stat_times[-1])]
        resolution = float(abs(lat[1] - lat[0]))
        g.attrs.update({
            "dchag_artifact": "anemoi",
            "layout": "gridded",
            "dimensions": ["dates", "variables", "ensembles", "values"],
            "variables": names,
            "field_shape": [h, w],
            "flatten_grid": True,
            "ensemble_dimension": 2,
            "frequency": f"{freq}h",
            "resolution": f"{resolution:g}",
            "start_date": iso[0], "end_date": iso[1],
            "statistics_start_date": iso[2], "statistics_end_date": iso[3],
            "missing_dates": [str(d) for d in (EPOCH + missing * np.timedelta64(1, "h")
                                               ).astype("datetime64[s]")],
            "constant_fields": [anemoi_name(c) for c in
                                src.attrs.get("constant_channels", [])],
            "variables_metadata": _variables_metadata(channels),
            "data_request": {"grid": [resolution, float(abs(lon[1] - lon[0]))],
                             "area": [float(lat.max()), float(lon.min()), float(lat.min()),
                                      float(lon.max())],
                             "param_level": _param_levels(channels)},
            "allow_nans": bool(has_nans.any()),
            "licence": "CC-BY-4.0 (ERA5, Copernicus Climate Change Service)",
            "attribution": "ECMWF/C3S",
            "description": f"ERA5 regridded by dchag prep era5 from {store.name}",
            "uuid": str(uuid.uuid4()),
            "version": "0.30",
            "provenance": provenance("export anemoi", {"store": str(store)}, [store],
                                     seed=None),
        })
        zarr.consolidate_metadata(g.store)  # anemoi opens stores by their consolidated metadata
    return AnemoiSummary(out, full.size, len(channels), int(missing.size), freq)


class _Tendency:
    """Statistics of one-step tendencies over the statistics period, streamed in time
    order: the last field of a block pairs with the first of the next."""

    def __init__(self, c: int):
        self.sums, self.squares = np.zeros(c), np.zeros(c)
        self.count = np.zeros(c, np.int64)
        self.lo, self.hi = np.full(c, np.inf), np.full(c, -np.inf)
        self.last: tuple[int, np.ndarray] | None = None

    def add(self, block: np.ndarray, hours: np.ndarray, keep: np.ndarray, freq: int) -> None:
        fields = [(int(h), block[i]) for i, h in enumerate(hours) if keep[i]]
        if self.last is not None:
            fields.insert(0, self.last)
        for (h0, a), (h1, b) in itertools.pairwise(fields):
            if h1 - h0 != freq:
                continue  # a missing date between them: no tendency
            d = (b.astype(np.float64) - a).reshape(a.shape[0], -1)
            ok = np.isfinite(d)
            self.sums += np.where(ok, d, 0).sum(axis=1)
            self.squares += np.where(ok, d * d, 0).sum(axis=1)
            self.count += ok.sum(axis=1)
            self.lo = np.fmin(self.lo, np.nanmin(d, axis=1))
            self.hi = np.fmax(self.hi, np.nanmax(d, axis=1))
        self.last = fields[-1] if fields else self.last

    def arrays(self, prefix: str) -> list[tuple[str, np.ndarray]]:
        n = np.maximum(self.count, 1)
        mean = self.sums / n
        stdev = np.sqrt(np.maximum(self.squares / n - mean**2, 0.0))
        return [(prefix + k, v) for k, v in (
            ("mean", mean), ("stdev", stdev), ("minimum", self.lo), ("maximum", self.hi),
            ("sums", self.sums), ("squares", self.squares), ("count", self.count),
            ("has_nans", self.count < self.count.max()))]


def _param_levels(channels: list[str]) -> dict[str, list]:
    levels: dict[str, list] = {}
    for name in channels:
        ch = parse_channel(name)
        if ch.level is not None:
            levels.setdefault(ch.variable, []).append(ch.level)
    return levels
