"""Reading ERA5 netCDF the way the Copernicus Climate Data Store delivers it.

Two naming generations exist: the current CDS writes `valid_time` / `pressure_level`,
float32 with NaN fill; the older CDS wrote `time` / `level`, int16 packed with
`scale_factor`/`add_offset`, and an `expver` dimension when ERA5 and ERA5T were mixed.
Both are normalised here to dims `time`, `level`, `lat`, `lon`, so the rest of the
pipeline sees one layout. A request mixing instantaneous and accumulated variables
arrives as a ZIP of netCDF files; `expand_sources` unpacks it.

Values are read *raw* (packed int16 stays int16) and only the rows a regrid needs, with
their `Packing` (scale, offset, fill values): unpacking is affine, so the prep applies it
to the few regridded values instead of the whole field wherever the regrid weights sum to
one. `read` gives decoded float32 for everything else.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.channels import VARIABLES, short_name
from pipelines.data.era5_open import (
    GRIB_SUFFIXES,
    FileCache,
    is_zarr,
    keep,
    normalise,
    open_source,
)
from pipelines.data.grid import LatLonGrid, check_regular
from pipelines.data.remote import RemoteZarr
from pipelines.data.units import Conversion, conversion
from pipelines.errors import DchagError
from pipelines.guard import check_input_path

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")


def _is_source(path: Path) -> bool:
    suffix = path.suffix.lower()
    return ((suffix in NETCDF_SUFFIXES or suffix in GRIB_SUFFIXES) and path.is_file()) or \
        (suffix == ".zarr" and is_zarr(path))



@contextlib.contextmanager
def expand_sources(paths: list[Path]) -> Iterator[list[Path]]:
    """Folders become their netCDF and GRIB files and zarr stores (recursively), ZIPs their
    netCDF members; order is sorted. A zarr store is one source."""
    with tempfile.TemporaryDirectory(prefix="dchag-zip-") as tmp:
        out: list[Path] = []
        for p in paths:
            if isinstance(p, RemoteZarr):
                out.append(p)
                continue
            p = Path(p)
            check_input_path(p)
            if is_zarr(p):
                out.append(p)
            elif p.is_dir():
                found = sorted(f for f in p.rglob("*") if _is_source(f))
                found = [f for f in found if not any(is_zarr(a) for a in f.parents)]
                if not found:
                    raise DchagError("folder holds no ERA5 input (*.nc, *.grib, *.zarr)",
                                     path=p)
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


@dataclass(frozen=True)
class Packing:
    """CF packing of a variable: value = raw × scale + offset; `fills` mark missing values
    (`_FillValue`, `missing_value`); `unsigned` for netCDF-3 `_Unsigned` bytes."""

    scale: float = 1.0
    offset: float = 0.0
    fills: tuple[float, ...] = ()
    unsigned: bool = False

    @classmethod
    def of(cls, attrs: dict) -> Packing:
        fills = []
        for key in ("_FillValue", "missing_value"):
            for v in np.atleast_1d(attrs.get(key, [])):
                fills.append(float(v))
        return cls(float(attrs.get("scale_factor", 1.0)), float(attrs.get("add_offset", 0.0)),
                   tuple(fills), str(attrs.get("_Unsigned", "false")).lower() == "true")

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def check(self, variable: str, path: Path) -> None:
        """A scale of 0 decodes every value to the offset (a constant field that looks
        valid); a non-finite scale or offset decodes every value to NaN or inf."""
        if self.scale == 0 or not (np.isfinite(self.scale) and np.isfinite(self.offset)):
            raise DchagError(f"{variable} is packed with scale_factor {self.scale:g} and "
                             f"add_offset {self.offset:g}, which no value decodes through",
                             path=path, fix="the file's packing attributes are damaged: "
                             "download or write it again")

    def values(self, raw: np.ndarray) -> np.ndarray:
        """Raw numbers as stored (unsigned bytes seen as unsigned), not yet scaled."""
        if self.unsigned and raw.dtype.kind == "i":
            raw = raw.view(raw.dtype.str.replace("i", "u"))
        return raw

    def invalid(self, raw: np.ndarray) -> np.ndarray:
        """Missing (a fill value) or, for floats, not finite."""
        raw = self.values(raw)
        bad = np.isin(raw, [f for f in self.fills if np.isfinite(f)]) if self.fills else \
            np.zeros(raw.shape, bool)
        if raw.dtype.kind == "f":
            bad |= ~np.isfinite(raw)
        return bad

    def unpack(self, x: np.ndarray) -> np.ndarray:
        """Scale and offset (float32); NaN stays NaN."""
        x = np.asarray(x, np.float32)
        if self.identity:
            return x
        return x * np.float32(self.scale) + np.float32(self.offset)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw → float32 physical-as-stored values, missing as NaN."""
        bad = self.invalid(raw)
        out = self.unpack(self.values(raw).astype(np.float32))
        if bad.any():
            out = np.where(bad, np.float32(np.nan), out)
        return out


@dataclass
class Era5File:
    """One source file: which ERA5 variables it holds, on which levels, times and grid.

    Only this description is kept; the file itself is opened when a block is read and
    closed again (`FileCache`), so memory does not grow with the number of input files."""

    path: Path | RemoteZarr
    variables: dict[str, str]  # ERA5 short name → variable name in the file
    units: dict[str, Conversion]  # ERA5 short name → conversion to the store's unit
    levels: np.ndarray | None  # hPa, in file order
    times: np.ndarray  # datetime64[ns], in file order
    grid: LatLonGrid
    member: int | None = None  # the ensemble member read, for files with several
    # ERA5 short name → (time steps per chunk, levels per chunk, bytes per value), for
    # what a read of some times costs in whole chunks (`prep era5 --dry-run`)
    chunking: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    synthetic: bool = False  # written by `dchag sample era5`, not ERA5

    def level_index(self, level: int) -> int | None:
        if self.levels is None:
            return None
        hits = np.flatnonzero(np.isclose(self.levels, level))
        return int(hits[0]) if hits.size else None

    def read_raw(self, short: str, time_index: np.ndarray, level_index: list[int] | None,
                 cache: FileCache | None = None, rows: np.ndarray | None = None
                 ) -> tuple[np.ndarray, Packing]:
        """Raw values `(t, [nlev,] lat or rows, lon)` as stored, and how to unpack them.

        Only `rows` (latitude indices, sorted) are read when given. Old-CDS files mixing
        ERA5 and ERA5T (an `expver` dimension) are decoded and merged here, first valid
        value winning, and come back as float32 with an identity packing."""
        own = cache is None
        cache = cache or FileCache(1)
        try:
            da = cache.get(self)[self.variables[short]]
            if "time" not in da.dims:  # a constant field stored without time
                da = da.expand_dims(time=1)
                time_index = np.zeros(len(time_index), np.int64)
            sel: dict[str, object] = {"time": time_index}
            if level_index is not None:
                sel["level"] = level_index
            if rows is not None:
                sel["lat"] = rows
            packing = Packing.of(da.attrs)
            packing.check(short, self.path)
            raw = np.asarray(da.isel(sel).values)
            if "expver" in da.dims:
                axis = da.dims.index("expver")
                merged = packing.decode(np.take(raw, 0, axis=axis))
                for k in range(1, raw.shape[axis]):
                    merged = np.where(np.isnan(merged),
                                      packing.decode(np.take(raw, k, axis=axis)), merged)
                return merged, Packing()
            return raw, packing
        finally:
            if own:
                cache.close()

    def read(self, short: str, time_index: np.ndarray, level_index: list[int] | None,
             cache: FileCache | None = None) -> np.ndarray:
        """Decoded values `(t, [nlev,] lat, lon)` as float32, in the file's own units."""
        raw, packing = self.read_raw(short, time_index, level_index, cache)
        return packing.decode(raw)


def _check_whole_hours(times: np.ndarray, path: Path) -> None:
    seconds = times.astype("datetime64[s]").astype(np.int64)
    bad = np.flatnonzero(seconds % 3600)
    if bad.size:
        raise DchagError(f"{bad.size} time step(s) are not on a whole hour (first "
                         f"{str(times[bad[0]])[:19]})", path=path,
                         fix="ERA5 is hourly: pass files whose times are whole hours")


def open_era5(path: Path | RemoteZarr, member: int | None = None,
              keep_open: bool = False) -> Era5File:
    """Describe one ERA5 input; explain what is wrong with it. The file is closed again,
    or with `keep_open` handed to the reads that follow (`era5_open.take_kept`)."""
    raw = open_source(path)
    kept = False
    try:
        ds = normalise(raw, path, member)
        described = _describe(ds, raw, path, member)
        kept = keep_open and keep(described.path, described.member, ds)
        return described
    finally:
        if not kept:
            raw.close()


def _describe(ds: xr.Dataset, raw: xr.Dataset, path: Path | RemoteZarr,
              member: int | None) -> Era5File:
    """The file's variables, units, levels, times and grid, each checked."""
    if "time" in ds.variables:
        if not np.issubdtype(ds["time"].dtype, np.datetime64):
            raise DchagError("time coordinate could not be decoded as dates", path=path)
        times = ds["time"].values.astype("datetime64[ns]")
        _check_whole_hours(times, path)
    else:
        times = np.array([], "datetime64[ns]")
    grid = check_regular(ds["lat"].values, ds["lon"].values, str(path))
    variables: dict[str, str] = {}
    units: dict[str, Conversion] = {}
    chunking: dict[str, tuple[int, int, int]] = {}
    for name, da in ds.data_vars.items():
        short = short_name(str(name))
        if short is None or VARIABLES[short].computed:
            continue  # `number`, `expver` strings and other bookkeeping
        if short == "z" and "level" not in da.dims:
            short = "orography"  # surface geopotential, ERA5's invariant `z`
        meta = VARIABLES[short]
        wanted = ("time", "level", "lat", "lon") if meta.pressure_level else (
            "time", "lat", "lon")
        if "expver" in da.dims:  # old CDS, ERA5 and ERA5T mixed: merged when read
            wanted = (wanted[0], "expver", *wanted[1:])
        if meta.constant and "time" not in da.dims:
            wanted = wanted[1:]
        if tuple(da.dims) != wanted:
            raise DchagError(f"variable {name!r} has dims {da.dims}, expected {wanted}",
                             path=path)
        variables[short] = str(name)
        units[short] = conversion(short, da.attrs.get("units"), meta.units, path)
        chunking[short] = _chunking(da)
    if not variables:
        raise DchagError("holds no ERA5 variable this tool knows", path=path,
                         fix="see `dchag channels` for supported variables")
    levels = ds["level"].values.astype(float) if "level" in ds.dims else None
    return Era5File(path=path if isinstance(path, RemoteZarr) else Path(path),
                    variables=variables, units=units, levels=levels,
                    times=times, grid=grid, chunking=chunking,
                    synthetic=bool(raw.attrs.get("dchag_synthetic"))
                    or "synthetic" in str(raw.attrs.get("history", "")),
                    member=member if "number" in raw.dims else None)


def _chunking(da: xr.DataArray) -> tuple[int, int, int]:
    """(time steps, levels) per stored chunk and bytes per value; 1 where unchunked."""
    preferred = da.encoding.get("preferred_chunks") or {}
    time = next((preferred[k] for k in ("time", "valid_time") if k in preferred), 1)
    level = next((preferred[k] for k in ("level", "pressure_level", "isobaricInhPa", "plev")
                  if k in preferred), 1)
    return int(time), int(level), int(da.dtype.itemsize)
