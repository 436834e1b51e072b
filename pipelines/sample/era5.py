"""Synthetic ERA5 in the exact netCDF layouts the Copernicus CDS delivers.

The fields are built to be *learnable*, so a forecaster has something to find and
persistence is beatable: realistic mean states and magnitudes per variable and level
(z500 ≈ 5.5e4 m²/s², t850 ≈ 250–300 K), a seasonal cycle, a diurnal cycle at the
surface, and mid-latitude Rossby-like waves (zonal wavenumbers 3–6) that travel
eastward at 6–12°/day with slowly breathing amplitudes, coherent across variables and
levels. A little unpredictable noise sets a floor on any skill.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.channels import VARIABLES, Channel
from pipelines.errors import DchagError

G = 9.80665
WAVENUMBERS = np.array([3, 4, 5, 6])
SPEED_DEG_PER_DAY = np.array([12.0, 10.0, 8.0, 6.0])
SYNTHETIC = "dchag sample era5: travelling waves with daily and seasonal cycles, not ERA5"


@dataclass(frozen=True)
class WaveState:
    """Random but fixed (per seed) wave phases and amplitude periods."""

    phase: np.ndarray
    breathe_phase: np.ndarray
    breathe_days: np.ndarray

    @classmethod
    def from_seed(cls, seed: int) -> WaveState:
        rng = np.random.default_rng(seed)
        n = WAVENUMBERS.size
        return cls(phase=rng.uniform(0, 2 * np.pi, n), breathe_phase=rng.uniform(0, 2 * np.pi, n),
                   breathe_days=rng.uniform(20, 45, n))


def _height_m(p_hpa: float) -> float:
    """International standard atmosphere height of a pressure level."""
    return 44330.8 * (1 - (p_hpa / 1013.25) ** 0.190263)


def _std_temperature(p_hpa: float) -> float:
    return max(288.15 - 6.5e-3 * _height_m(p_hpa), 216.65)


def _waves(days: np.ndarray, lat: np.ndarray, lon: np.ndarray, state: WaveState,
           phase_shift: float = 0.0) -> np.ndarray:
    """Eastward travelling mid-latitude waves, unit amplitude: (time, lat, lon)."""
    lam = np.deg2rad(lon)[None, None, :]
    envelope = np.exp(-(((np.abs(lat) - 45.0) / 15.0) ** 2))[None, :, None]
    out = np.zeros((days.size, lat.size, lon.size))
    for k, c, ph, bp, bd in zip(WAVENUMBERS, SPEED_DEG_PER_DAY, state.phase, state.breathe_phase,
                                state.breathe_days, strict=True):
        amp = 1.0 + 0.3 * np.sin(2 * np.pi * days / bd + bp)
        arg = k * (lam - np.deg2rad(c) * days[:, None, None]) + ph + phase_shift
        out += amp[:, None, None] * np.cos(arg) / np.sqrt(WAVENUMBERS.size)
    return out * envelope


def _noise(ch: Channel, hours: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Unit noise that depends only on (seed, channel, time): any file split gives the same."""
    key = zlib.crc32(ch.name.encode())
    return np.stack([np.random.default_rng([seed, key, int(h)]).standard_normal(shape)
                     for h in hours])


def synthetic_field(ch: Channel, times: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                    state: WaveState, seed: int) -> np.ndarray:
    """One channel's values (time, lat, lon) in physical units."""
    t64 = times.astype("datetime64[s]").astype(np.int64)
    days = t64 / 86400.0
    doy = (times - times.astype("datetime64[Y]")).astype("timedelta64[s]").astype(np.int64) / 86400
    hour = (t64 % 86400) / 3600.0
    la = lat[None, :, None]
    lo = lon[None, None, :]
    sinl, cosl = np.sin(np.deg2rad(la)), np.cos(np.deg2rad(la))
    season = np.cos(2 * np.pi * (doy - 15) / 365.25)[:, None, None]  # +1 in mid-January
    p = float(ch.level) if ch.level is not None else 1000.0
    tilt = 0.15 * np.log(1000.0 / p)  # waves tilt westward with height
    w = _waves(days, lat, lon, state, tilt)
    w_east = _waves(days, lat, lon, state, tilt + np.pi / 2)  # quadrature: winds, moisture
    jet = np.exp(-(((np.abs(la) - 40.0) / 12.0) ** 2)) - 0.3 * np.exp(-((la / 15.0) ** 2))
    local_hour = (hour[:, None, None] + lo / 15.0) % 24
    diurnal = np.cos(2 * np.pi * (local_hour - 14.0) / 24.0)
    v = ch.variable
    if v == "z":
        field = G * (_height_m(p) - 350.0 * sinl**2 * (1.2 - p / 1000) - 30 * sinl * season
                     + 90.0 * (1.4 - p / 1000) * w)
    elif v == "t":
        field = (_std_temperature(p) + 14 * cosl**2 - 18 * sinl**2 - 9 * sinl * season
                 + 3.5 * w_east)
    elif v == "u":
        field = 28 * jet * (1.3 - abs(p - 250) / 1000) + 9 * w_east * (1.3 - p / 1000)
    elif v == "v":
        field = 8 * w * (1.3 - p / 1000) * np.sign(la + 1e-9)
    elif v == "q":
        field = 0.016 * np.exp(-((la / 35.0) ** 2)) * (p / 1000) ** 3 * (1 + 0.25 * w_east)
    elif v == "r":
        field = 55 + 25 * np.cos(np.deg2rad(3 * la)) * (p / 1000) + 15 * w_east
    elif v == "w":
        field = 0.15 * w_east * (p / 1000)
    elif v == "t2m":
        field = 300 - 45 * sinl**2 - 11 * sinl * season + 4 * diurnal * cosl + 2.5 * w_east
    elif v == "u10":
        field = 8 * jet + 3 * w_east
    elif v == "v10":
        field = 3 * w * np.sign(la + 1e-9)
    elif v in ("msl", "sp"):
        base = 101325 - 1500 * np.exp(-(((np.abs(la) - 60) / 10) ** 2))
        field = base + 900 * w - (0 if v == "msl" else 4000 * cosl**4)
    elif v == "tp":
        field = 2e-4 * np.maximum(w_east + 0.4 * np.exp(-((la / 10) ** 2)), 0.0)
    elif v == "tcwv":
        field = 45 * np.exp(-((la / 30) ** 2)) * (1 + 0.2 * w_east)
    elif v == "tisr":
        field = 3.6e6 * 340 / 1361 * np.maximum(np.cos(np.deg2rad(la)) * diurnal, 0.0) * 4
    elif v == "lsm":
        field = (np.sin(np.deg2rad(2 * lo)) * np.cos(np.deg2rad(3 * la)) > 0.3).astype(float)
        field = np.broadcast_to(field, w.shape)
    else:  # pragma: no cover - every VARIABLES entry is handled above
        raise DchagError(f"no synthetic model for variable {v!r}")
    field = np.broadcast_to(field, w.shape)
    if v not in ("lsm", "tisr"):
        scale = np.std(field) if np.std(field) > 0 else 1.0
        field = field + 0.01 * scale * _noise(ch, t64 // 3600, field.shape[1:], seed)
    if v in ("q", "tp", "tcwv"):
        field = np.maximum(field, 0.0)
    if v == "r":
        field = np.clip(field, 0.0, 100.0)
    return field.astype(np.float32)


def source_grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """ERA5's orientation: latitude 90 → -90 including poles, longitude 0 → 360-res."""
    nlat = round(180 / resolution) + 1
    nlon = round(360 / resolution)
    return np.linspace(90.0, -90.0, nlat), resolution * np.arange(nlon)


def write_cds_netcdf(path: Path, channels: list[Channel], times: np.ndarray, resolution: float,
                     style: str, seed: int) -> Path:
    """Write one file in the new (`valid_time`, float32, compressed netCDF4) or old
    (`time`, int16 packed, netCDF3) CDS layout. All channels must be one level type."""
    lat, lon = source_grid(resolution)
    state = WaveState.from_seed(seed)
    levels = sorted({c.level for c in channels if c.level is not None}, reverse=True)
    pressure = bool(levels)
    if pressure and any(c.level is None for c in channels):
        raise DchagError("a CDS file holds either pressure-level or single-level variables")
    variables = sorted({c.variable for c in channels})
    tname, lname = ("valid_time", "pressure_level") if style == "new" else ("time", "level")
    if style == "old":
        levels = sorted(levels)  # the old CDS listed levels top-down (1 → 1000 hPa)
    data_vars = {}
    for var in variables:
        if pressure:
            arr = np.stack([synthetic_field(Channel(var, lv), times, lat, lon, state, seed)
                            for lv in levels], axis=1)
            dims = (tname, lname, "latitude", "longitude")
        else:
            arr = synthetic_field(Channel(var, None), times, lat, lon, state, seed)
            dims = (tname, "latitude", "longitude")
        meta = VARIABLES[var]
        data_vars[var] = xr.Variable(dims, arr, {"units": meta.units,
                                                 "long_name": meta.long.replace("_", " ")})
    coords: dict[str, object] = {
        "latitude": ("latitude", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "longitude": ("longitude", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        tname: (tname, times.astype("datetime64[ns]"), {"standard_name": "time"}),
    }
    if pressure:
        coords[lname] = (lname, np.array(levels, dtype=float),
                         {"units": "hPa" if style == "new" else "millibars",
                          "long_name": "pressure"})
    ds = xr.Dataset(data_vars, coords=coords)
    encoding: dict[str, dict] = {}
    if style == "new":
        ds = ds.assign_coords(number=0, expver=(tname, np.full(times.size, "0001")))
        ds.attrs.update({"GRIB_centre": "ecmf", "Conventions": "CF-1.7",
                         "institution": "European Centre for Medium-Range Weather Forecasts",
                         "dchag_synthetic": SYNTHETIC})
        encoding[tname] = {"units": "seconds since 1970-01-01", "dtype": "int64",
                           "calendar": "proleptic_gregorian"}
        for var in variables:
            encoding[var] = {"zlib": True, "complevel": 4, "_FillValue": np.float32(np.nan),
                             "least_significant_digit": _significant_digit(var)}
        fmt = "NETCDF4"
    else:
        ds.attrs.update({"Conventions": "CF-1.6", "history": "synthetic ERA5 (old CDS layout)",
                         "dchag_synthetic": SYNTHETIC})
        encoding[tname] = {"units": "hours since 1900-01-01 00:00:00.0", "dtype": "int32",
                           "calendar": "gregorian"}
        for var in variables:
            a = ds[var].values
            lo, hi = float(a.min()), float(a.max())
            scale = (hi - lo) / (2**16 - 4) or 1.0  # keep -32767 free for _FillValue
            encoding[var] = {"dtype": "int16", "scale_factor": scale, "add_offset": (hi + lo) / 2,
                             "_FillValue": np.int16(-32767)}
        fmt = "NETCDF3_64BIT"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, format=fmt, encoding=encoding)
    return path


def _significant_digit(var: str) -> int:
    """Enough decimals for each variable that compression is not lossy in any way that matters."""
    return {"q": 6, "tp": 7, "w": 4}.get(var, 2)


def generate_era5(out: Path, channels: list[Channel], start: str, days: int, step_hours: int,
                  resolution: float, seed: int, split_days: int | None = None) -> list[Path]:
    """A CDS-like delivery: pressure-level files in the new layout, single-level files in the
    old one (so both generations are exercised), optionally split into chunks of days."""
    if days < 1 or step_hours < 1:
        raise DchagError("--days and --step-hours must be at least 1")
    if not np.isfinite(resolution) or not 0 < resolution <= 90 or \
            not np.isclose(180 / resolution, round(180 / resolution)):
        raise DchagError(f"--resolution {resolution} must divide 180°", fix="e.g. 0.25, 2.5, 5")
    try:
        t0 = np.datetime64(start, "h")
    except ValueError as exc:
        raise DchagError(f"--start {start!r} is not a date", fix="write e.g. 2018-01-01"
                         ) from exc
    times = t0 + np.arange(0, days * 24, step_hours).astype("timedelta64[h]")
    pl = [c for c in channels if c.level is not None]
    sl = [c for c in channels if c.level is None]
    split = split_days or days
    paths = []
    for start_day in range(0, days, split):
        sel = times[(times >= t0 + np.timedelta64(start_day * 24, "h"))
                    & (times < t0 + np.timedelta64((start_day + split) * 24, "h"))]
        tag = str(sel[0].astype("datetime64[D]"))
        if pl:
            paths.append(write_cds_netcdf(out / f"era5_pressure_levels_{tag}.nc", pl, sel,
                                          resolution, "new", seed))
        if sl:
            paths.append(write_cds_netcdf(out / f"era5_single_levels_{tag}.nc", sl, sel,
                                          resolution, "old", seed))
    return paths
