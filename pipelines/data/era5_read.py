"""Reading ERA5 netCDF the way the Copernicus Climate Data Store delivers it.

Two naming generations exist: the current CDS writes `valid_time` / `pressure_level`,
float32 with NaN fill; the older CDS wrote `time` / `level`, int16 packed with
`scale_factor`/`add_offset`, and an `expver` dimension when ERA5 and ERA5T were mixed.
Both are normalised here to dims `time`, `level`, `lat`, `lon`, values decoded, so the
rest of the pipeline sees one layout. A request mixing instantaneous and accumulated
variables arrives as a ZIP of netCDF files; `expand_sources` unpacks it.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.channels import VARIABLES, short_name
from pipelines.data.grid import LatLonGrid, check_regular
from pipelines.errors import DchagError

_RENAMES = {
    "valid_time": "time",
    "pressure_level": "level",
    "isobaricInhPa": "level",
    "plev": "level",
    "latitude": "lat",
    "longitude": "lon",
}
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")


@contextlib.contextmanager
def expand_sources(paths: list[Path]) -> Iterator[list[Path]]:
    """Folders become their netCDF files (recursively), ZIPs their members; order is sorted."""
    with tempfile.TemporaryDirectory(prefix="dchag-zip-") as tmp:
        out: list[Path] = []
        for p in paths:
            p = Path(p)
            if not p.exists():
                raise DchagError("no such file or folder", path=p)
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.suffix.lower() in NETCDF_SUFFIXES)
                if not found:
                    raise DchagError("folder holds no netCDF files (*.nc)", path=p)
                out.extend(found)
            elif zipfile.is_zipfile(p):
                dest = Path(tmp) / f"{len(out)}-{p.stem}"
                with zipfile.ZipFile(p) as zf:
                    members = [m for m in zf.namelist() if m.lower().endswith(NETCDF_SUFFIXES)]
                    if not members:
                        raise DchagError("ZIP holds no netCDF files", path=p)
                    for m in members:
                        target = (dest / m).resolve()
                        if not target.is_relative_to(dest.resolve()):
                            raise DchagError(f"ZIP member {m!r} points outside the archive",
                                             path=p)
                        zf.extract(m, dest)
                        out.append(target)
            else:
                out.append(p)
        yield out


@dataclass
class Era5File:
    """One opened source: which ERA5 variables it holds, on which levels, times and grid."""

    path: Path
    ds: xr.Dataset
    variables: dict[str, str]  # ERA5 short name → variable name in the file
    levels: np.ndarray | None  # hPa, in file order
    times: np.ndarray  # datetime64[ns], in file order
    grid: LatLonGrid

    def level_index(self, level: int) -> int | None:
        if self.levels is None:
            return None
        hits = np.flatnonzero(np.isclose(self.levels, level))
        return int(hits[0]) if hits.size else None

    def read(self, short: str, time_index: np.ndarray, level_index: list[int] | None) -> np.ndarray:
        """Decoded values `(t, [nlev,] lat, lon)` as float32."""
        da = self.ds[self.variables[short]]
        sel: dict[str, object] = {"time": time_index}
        if level_index is not None:
            sel["level"] = level_index
        return np.asarray(da.isel(sel).values, dtype=np.float32)


def _merge_expver(ds: xr.Dataset) -> xr.Dataset:
    """Old-CDS files mixing ERA5 (expver 1) and ERA5T (expver 5): take the first valid value."""
    if "expver" not in ds.dims:
        return ds.drop_vars("expver", errors="ignore")
    merged = ds.isel(expver=0)
    for i in range(1, ds.sizes["expver"]):
        merged = merged.fillna(ds.isel(expver=i))
    return merged.drop_vars("expver", errors="ignore")


def open_era5(path: Path) -> Era5File:
    """Open one ERA5 netCDF file lazily and normalise its layout; explain what is wrong."""
    try:
        ds = xr.open_dataset(path, engine="netcdf4", mask_and_scale=True, decode_times=True,
                             cache=False)
    except Exception as exc:  # the netCDF library raises OSError, ValueError, RuntimeError…
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise DchagError(f"not a readable netCDF file ({reason})", path=path,
                         fix="pass ERA5 netCDF files as downloaded from the CDS") from exc
    ds = ds.rename({k: v for k, v in _RENAMES.items() if k in ds.variables or k in ds.dims})
    ds = _merge_expver(ds)
    for coord in ("lat", "lon", "time"):
        if coord not in ds.variables:
            raise DchagError(f"no {coord!r} coordinate (expected ERA5 layout: "
                             "valid_time or time, latitude, longitude)", path=path)
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise DchagError("time coordinate could not be decoded as dates", path=path)
    grid = check_regular(ds["lat"].values, ds["lon"].values, str(path))
    variables: dict[str, str] = {}
    for name, da in ds.data_vars.items():
        short = short_name(str(name))
        if short is None:
            continue  # `number`, `expver` strings and other bookkeeping
        wanted = ("time", "level", "lat", "lon") if VARIABLES[short].pressure_level else (
            "time", "lat", "lon")
        if tuple(da.dims) != wanted:
            raise DchagError(f"variable {name!r} has dims {da.dims}, expected {wanted}", path=path)
        variables[short] = str(name)
    if not variables:
        raise DchagError("holds no ERA5 variable this tool knows", path=path,
                         fix="see `dchag channels` for supported variables")
    levels = ds["level"].values.astype(float) if "level" in ds.dims else None
    return Era5File(path=Path(path), ds=ds, variables=variables, levels=levels,
                    times=ds["time"].values.astype("datetime64[ns]"), grid=grid)
