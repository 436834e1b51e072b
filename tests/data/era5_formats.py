"""The shipped ERA5 sample rewritten as GRIB (what the CDS delivers natively) and as a
WeatherBench 2-layout zarr, for tests that every input kind gives the same store; and
constant fields (land-sea mask, surface geopotential) in ERA5's and WB2's layouts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.channels import VARIABLES
from pipelines.data.units import G0

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "era5"
# ECMWF parameter ids (GRIB) of the sample's variables
PARAM_IDS = {"z": 129, "t": 130, "u": 131, "v": 132, "q": 133, "t2m": 167, "u10": 165,
             "v10": 166, "msl": 151}


def sample_dataset() -> xr.Dataset:
    """Both sample files decoded into one dataset: (time, [level,] latitude, longitude)."""
    pl = xr.open_dataset(SAMPLE / "era5_pressure_levels_2018-01-01.nc").load()
    pl = pl.rename({"valid_time": "time", "pressure_level": "level"})
    pl = pl.drop_vars([v for v in ("number", "expver") if v in pl.variables])
    sl = xr.open_dataset(SAMPLE / "era5_single_levels_2018-01-01.nc").load()
    return xr.merge([pl, sl], compat="override", join="exact")


def write_wb2_zarr(out: Path) -> Path:
    """WeatherBench 2's layout: long names, `level`, (time, [level,] longitude, latitude),
    latitude south to north, float32."""
    ds = sample_dataset()
    ds = ds.rename({name: VARIABLES[name].long for name in ds.data_vars})
    ds = ds.isel(latitude=slice(None, None, -1))
    ds = ds.transpose("time", "level", "longitude", "latitude")
    ds = ds.astype("float32")
    for name in ds.data_vars:
        ds[name].encoding = {"chunks": (1, *ds[name].shape[1:])}  # one time per chunk
    ds.to_zarr(out, mode="w", zarr_format=2, consolidated=True)
    return out


def write_grib(folder: Path, members: int = 1) -> list[Path]:
    """GRIB 2 (IEEE floats: exact), one file of pressure levels and one per single-level
    variable (cfgrib reads one level type per file), optionally with ensemble members
    (member k holds the sample plus k/1000: still physically possible for every variable)."""
    import eccodes

    ds = sample_dataset()
    folder.mkdir(parents=True, exist_ok=True)
    lat, lon = ds["latitude"].values, ds["longitude"].values
    written = []
    groups = {"pressure_levels": [v for v in ds.data_vars if "level" in ds[v].dims]}
    groups |= {v: [v] for v in ds.data_vars if "level" not in ds[v].dims}
    for stem, names in groups.items():
        path = folder / f"era5_{stem}.grib"
        with open(path, "wb") as fh:
            for name in names:
                da = ds[name]
                levels = list(da["level"].values) if "level" in da.dims else [None]
                for t, k, member in itertools.product(range(ds.sizes["time"]),
                                                      range(len(levels)), range(members)):
                    field = da.values[t, k] if levels[k] is not None else da.values[t]
                    h = _grib_message(field + member / 1000, ds["time"].values[t], lat, lon,
                                      PARAM_IDS[name], levels[k], member, members)
                    eccodes.codes_write(h, fh)
                    eccodes.codes_release(h)
        written.append(path)
    return written


def _grib_message(field: np.ndarray, when: np.datetime64, lat: np.ndarray, lon: np.ndarray,
                  param_id: int, level: float | None, member: int, members: int):
    """One GRIB 2 message of `field` (IEEE floats), from eccodes' own samples."""
    import eccodes

    stamp = np.datetime_as_string(when, unit="m")
    sample = "regular_ll_pl_grib2" if level is not None else "regular_ll_sfc_grib2"
    h = eccodes.codes_grib_new_from_samples(sample)
    for key, value in (
            ("Ni", lon.size), ("Nj", lat.size),
            ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
            ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
            ("longitudeOfFirstGridPointInDegrees", float(lon[0])),
            ("longitudeOfLastGridPointInDegrees", float(lon[-1])),
            ("iDirectionIncrementInDegrees", float(lon[1] - lon[0])),
            ("jDirectionIncrementInDegrees", abs(float(lat[1] - lat[0]))),
            ("jScansPositively", 0),
            ("dataDate", int(stamp[:10].replace("-", ""))),
            ("dataTime", int(stamp[11:13]) * 100),
            ("paramId", param_id)):
        eccodes.codes_set(h, key, value)
    if level is not None:
        eccodes.codes_set(h, "level", int(level))
    if members > 1:
        eccodes.codes_set(h, "productDefinitionTemplateNumber", 1)
        eccodes.codes_set(h, "perturbationNumber", member)
        eccodes.codes_set(h, "numberOfForecastsInEnsemble", members)
    eccodes.codes_set(h, "packingType", "grid_ieee")
    eccodes.codes_set_values(h, field.ravel().astype(np.float64))
    return h


def _fields() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A land-sea mask and an orography (m) on the sample's 5° grid."""
    ds = sample_dataset()
    lat, lon = ds["latitude"].values, ds["longitude"].values
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    lsm = (np.sin(2 * lo) * np.cos(la) > 0.2).astype(np.float32)
    orography = (lsm * 2500 * np.cos(la) ** 2 + 40 * np.sin(3 * lo)).astype(np.float32)
    return lat, lon, lsm, orography


def write_invariant_netcdf(path):
    """ERA5's invariant file as the current CDS writes it: one `valid_time`, surface
    geopotential `z` in m² s⁻²."""
    lat, lon, lsm, orography = _fields()
    dims = ("valid_time", "latitude", "longitude")
    ds = xr.Dataset(
        {"lsm": (dims, lsm[None], {"units": "(0 - 1)"}),
         "z": (dims, (orography * G0)[None], {"units": "m**2 s**-2"})},
        coords={"valid_time": [np.datetime64("1979-01-01T00", "ns")], "latitude": lat,
                "longitude": lon})
    ds.to_netcdf(path)
    return path


def write_wb2_with_constants(path):
    """WeatherBench 2's layout: constants without a time dimension, long names."""
    write_wb2_zarr(path)
    lat, lon, lsm, orography = _fields()
    dims = ("longitude", "latitude")
    extra = xr.Dataset(
        {"land_sea_mask": (dims, lsm.T[:, ::-1]),
         "geopotential_at_surface": (dims, (orography * G0).T[:, ::-1],
                                     {"units": "m**2 s**-2"})},
        coords={"latitude": lat[::-1], "longitude": lon})
    extra.to_zarr(path, mode="a", zarr_format=2, consolidated=True)
    return path
