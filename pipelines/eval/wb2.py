"""WeatherBench 2's data layout: reading its climatologies and forecasts, writing ours.

WB2 stores one data variable per physical variable, named by its long name
(`geopotential`, `2m_temperature`), with dims from `time` (the init time),
`prediction_timedelta`, `level` (hPa), `latitude`, `longitude` — and climatologies with
`hour` and `dayofyear` instead of the times. Channels map to them by name and level
(`z_500` ↔ `geopotential` at level 500). Fields on another grid are regridded bilinearly
to the store's grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.channels import VARIABLES, parse_channel
from pipelines.data.grid import LatLonGrid
from pipelines.data.times import EPOCH
from pipelines.errors import DchagError

_RENAMES = {"lat": "latitude", "lon": "longitude", "init_time": "time",
            "lead_time": "prediction_timedelta", "pressure_level": "level"}


def wb2_variable(channel: str) -> tuple[str, int | None]:
    ch = parse_channel(channel)
    return VARIABLES[ch.variable].long, ch.level


def open_wb2(path: Path, dims: tuple[str, ...], kind: str) -> xr.Dataset:
    """A WeatherBench 2 `kind` (forecast, climatology) with WB2's names, refused unless it
    has all of `dims`."""
    path = Path(path)
    if not path.exists():
        raise DchagError("no such file or store", path=path)
    try:
        ds = xr.open_zarr(path) if path.is_dir() else xr.open_dataset(path)
    except Exception as exc:  # zarr and netCDF raise many types
        raise DchagError(f"not a readable zarr store or netCDF file ({type(exc).__name__})",
                         path=path) from exc
    ds = ds.rename({k: v for k, v in _RENAMES.items() if k in ds.variables or k in ds.dims})
    for dim in dims:
        if dim not in ds.dims:
            raise DchagError(f"has no {dim!r} dimension: not a WeatherBench 2 {kind}",
                             path=path)
    return ds


def _field(ds: xr.Dataset, channel: str, path: Path) -> xr.DataArray:
    name, level = wb2_variable(channel)
    if name not in ds.data_vars:
        raise DchagError(f"has no variable {name!r} (for {channel})", path=path,
                         fix="score only channels the file holds")
    da = ds[name]
    if level is not None:
        if "level" not in da.dims or level not in ds["level"].values:
            raise DchagError(f"{name} has no level {level} (for {channel})", path=path)
        da = da.sel(level=level)
    for dim in ("latitude", "longitude"):
        if dim not in da.dims:
            raise DchagError(f"{name} has no {dim!r} dimension (WeatherBench 2 layout)",
                             path=path)
    return da


class _ToGrid:
    """Bring fields (…, latitude, longitude) onto the store's grid (south → north)."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray, target: LatLonGrid):
        self.same = lat.shape == target.lat.shape and np.allclose(lat, target.lat) and \
            lon.shape == target.lon.shape and np.allclose(lon, target.lon)
        self.flip = lat.shape == target.lat.shape and np.allclose(lat[::-1], target.lat) and \
            lon.shape == target.lon.shape and np.allclose(lon, target.lon)
        self.regridder = None
        if not (self.same or self.flip):
            from pipelines.data.grid import check_regular
            from pipelines.data.regrid import build_regridder

            self.regridder = build_regridder(check_regular(lat, lon, "WB2 file"), target,
                                             "bilinear")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.same:
            return x
        if self.flip:
            return x[..., ::-1, :]
        return self.regridder.apply(x)


class WB2Climatology:
    """A climatology in WB2's layout (`hour`, `dayofyear`, latitude, longitude)."""

    def __init__(self, path: Path, channels: list[str], target: LatLonGrid):
        self.path = Path(path)
        ds = open_wb2(self.path, ("hour", "dayofyear"), "climatology")
        self.hours = [int(h) for h in ds["hour"].values]
        self.days = [int(d) for d in ds["dayofyear"].values]
        self.fields = [_field(ds, c, self.path).transpose("dayofyear", "hour", "latitude",
                                                           "longitude") for c in channels]
        self.grid = _ToGrid(np.asarray(ds["latitude"].values, float),
                            np.asarray(ds["longitude"].values, float), target)

    @property
    def description(self) -> str:
        return f"WeatherBench 2 file {self.path.name} (day of year and hour)"

    def time_mean(self) -> np.ndarray:
        """(c, H, W): the file's fields averaged over every day of year and hour."""
        return np.stack([self.grid(np.asarray(f.mean(("dayofyear", "hour")).values,
                                              np.float64)) for f in self.fields])

    def at(self, valid_hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from pipelines.data.era5_stats import day_of_year_index, hour_of_day

        times = EPOCH + valid_hours.astype("timedelta64[h]")
        doy, hod = day_of_year_index(times) + 1, hour_of_day(times)
        out, ok = [], []
        for d, h in zip(doy, hod, strict=True):
            if int(d) in self.days and int(h) in self.hours:
                out.append(np.stack([self.grid(np.asarray(
                    f.isel(dayofyear=self.days.index(int(d)), hour=self.hours.index(int(h))
                           ).values, np.float64)) for f in self.fields]))
                ok.append(True)
            else:
                out.append(None)
                ok.append(False)
        shape = next((o.shape for o in out if o is not None), None)
        filled = [o if o is not None else np.full(shape, np.nan) for o in out] if shape else []
        return (np.stack(filled) if filled else np.empty((0,))), np.array(ok, bool)


class WB2Forecast:
    """Another model's forecast in WB2's layout, scored against the store's truth."""

    def __init__(self, path: Path, channels: list[str], target: LatLonGrid):
        self.path = Path(path)
        ds = open_wb2(self.path, ("time", "prediction_timedelta"), "forecast")
        present = [c for c in channels if _maybe(ds, c)]
        fields = {c: _field(ds, c, self.path) for c in present}
        # A level missing for one variable reads as NaN in WB2's shared `level` dimension:
        # a channel whose first field is all NaN is not in the file.
        self.channels = [c for c in present if np.isfinite(np.asarray(
            fields[c].isel(time=0, prediction_timedelta=0).values)).any()]
        if not self.channels:
            raise DchagError("holds none of the store's channels", path=self.path)
        self.fields = [fields[c] for c in self.channels]
        init = ds["time"].values.astype("datetime64[h]")
        self.init_hours = ((init - EPOCH) // np.timedelta64(1, "h")).astype(np.int64)
        self.leads = [int(td // np.timedelta64(1, "h")) for td in
                      ds["prediction_timedelta"].values.astype("timedelta64[h]")]
        self.grid = _ToGrid(np.asarray(ds["latitude"].values, float),
                            np.asarray(ds["longitude"].values, float), target)

        # the dchag run an exported forecast came from: its periods rule the scoring
        self.run = str(ds.attrs.get("dchag_run", "")) or None

    def fields_at(self, lead: int, init_hours: list[int]) -> np.ndarray:
        """(n, c, H, W) forecasts of `lead` from `init_hours`, on the store's grid."""
        li = self.leads.index(lead)
        pos = [int(np.flatnonzero(self.init_hours == h)[0]) for h in init_hours]
        return np.stack([np.stack([self.grid(np.asarray(
            f.isel(time=p, prediction_timedelta=li).transpose("latitude", "longitude").values,
            np.float64)) for f in self.fields]) for p in pos])


def _maybe(ds: xr.Dataset, channel: str) -> bool:
    name, level = wb2_variable(channel)
    return name in ds.data_vars and (level is None or ("level" in ds.dims and
                                                       level in ds["level"].values))


def to_wb2_dataset(init_hours: np.ndarray, leads: list[int], channels: list[str],
                   lat: np.ndarray, lon: np.ndarray, values: np.ndarray, attrs: dict
                   ) -> xr.Dataset:
    """WB2's forecast layout from (init, lead, channel, lat, lon) values: one variable per
    physical variable, levels as a dimension, CF units and long names."""
    coords = {"time": (EPOCH + init_hours.astype("timedelta64[h]")).astype("datetime64[ns]"),
              "prediction_timedelta": (np.array(leads) * np.timedelta64(1, "h")
                                       ).astype("timedelta64[ns]"),
              "latitude": ("latitude", np.asarray(lat, float), {"units": "degrees_north",
                                                               "standard_name": "latitude"}),
              "longitude": ("longitude", np.asarray(lon, float), {"units": "degrees_east",
                                                                 "standard_name": "longitude"})}
    by_var: dict[str, list[tuple[int | None, int]]] = {}
    for c, name in enumerate(channels):
        var, level = wb2_variable(name)
        by_var.setdefault(var, []).append((level, c))
    data_vars = {}
    levels: set[int] = set()
    for var, members in by_var.items():
        meta = next(v for v in VARIABLES.values() if v.long == var)
        attrs_v = {"units": meta.units, "long_name": meta.title}
        if meta.standard_name:
            attrs_v["standard_name"] = meta.standard_name
        if members[0][0] is None:
            data_vars[var] = (("time", "prediction_timedelta", "latitude", "longitude"),
                              values[:, :, members[0][1]], attrs_v)
        else:
            members = sorted(members)
            levels |= {lv for lv, _ in members}
            data_vars[var] = xr.DataArray(
                np.stack([values[:, :, c] for _, c in members], axis=2),
                dims=("time", "prediction_timedelta", "level", "latitude", "longitude"),
                coords={"level": [lv for lv, _ in members]}, attrs=attrs_v)
    ds = xr.Dataset(data_vars, coords=coords, attrs=netcdf_attrs(attrs))
    if "level" in ds.coords:
        ds["level"].attrs.update({"units": "hPa", "long_name": "pressure level"})
    empty = empty_levels(ds)
    if empty:
        ds.attrs["levels_without_data"] = "; ".join(empty)
    return ds


def netcdf_attrs(attrs: dict) -> dict:
    """Attributes netCDF can hold (WB2 writes its results as netCDF): strings, numbers and
    flat lists of them as they are; anything nested as JSON text."""
    out = {}
    for key, value in attrs.items():
        flat = isinstance(value, str | int | float) or (
            isinstance(value, list | tuple) and value
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))
        out[key] = value if flat and not isinstance(value, bool) else json.dumps(value)
    return out


def empty_levels(ds: xr.Dataset) -> list[str]:
    """`variable at N hPa` for each plane of WB2's shared `level` dimension that a variable
    does not have (all NaN): say so rather than leave a silent hole."""
    if "level" not in ds.dims:
        return []
    out = []
    for name, da in ds.data_vars.items():
        if "level" not in da.dims:
            continue
        for level in ds["level"].values:
            if not np.isfinite(da.sel(level=level).values).any():
                out.append(f"{name} at {int(level)} hPa")
    return out
