"""Opening one ERA5 input — netCDF, GRIB or zarr, local or by URL — as one layout, and
keeping the number of open files bounded.

`open_era5` must open every file to describe it, and the block reads open it again. A
prep hands the described file over instead (`keep_open`): the reader takes it from
`take_kept`, so each input is opened once. At most `KEEP_AT_MOST` stay open this way,
and `release_kept` closes what no read took.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import xarray as xr

from pipelines.data.remote import RemoteZarr
from pipelines.errors import DchagError
from pipelines.extras import require


class Source(Protocol):
    """What names an input to open: `era5_read.Era5File` is one."""

    path: Path | RemoteZarr
    member: int | None


CHUNK_CACHE_BYTES = 16 * 2**20  # HDF5's cache per open variable
GRIB_SUFFIXES = (".grib", ".grib1", ".grib2", ".grb", ".grb2")
KEEP_AT_MOST = 64  # described files kept open for the reads that follow

_RENAMES = {
    "valid_time": "time",
    "pressure_level": "level",
    "isobaricInhPa": "level",
    "plev": "level",
    "latitude": "lat",
    "longitude": "lon",
}


def is_zarr(path: Path) -> bool:
    """A zarr store (v2 or v3) given as a folder: WeatherBench 2's and ARCO-ERA5's layout."""
    return path.is_dir() and any((path / m).exists() for m in (".zgroup", ".zmetadata",
                                                                "zarr.json"))


_KEPT: OrderedDict[tuple[str, int | None], xr.Dataset] = OrderedDict()


def _key(path: Path | RemoteZarr, member: int | None) -> tuple[str, int | None]:
    return (path.url if isinstance(path, RemoteZarr) else str(Path(path)), member)


def keep(path: Path | RemoteZarr, member: int | None, ds: xr.Dataset) -> bool:
    """Keep a described, still-open dataset for the read that follows (False: no room,
    the caller closes it)."""
    if len(_KEPT) >= KEEP_AT_MOST:
        return False
    _KEPT[_key(path, member)] = ds
    return True


def take_kept(path: Path | RemoteZarr, member: int | None) -> xr.Dataset | None:
    """The dataset `keep` holds for this input, now the caller's to close; or None."""
    return _KEPT.pop(_key(path, member), None)


def release_kept() -> None:
    """Close every kept dataset no read took."""
    while _KEPT:
        _KEPT.popitem()[1].close()


class FileCache:
    """At most `size` files open at once, least recently used closed first. HDF5 keeps a
    chunk cache per open variable, so open files, not data read, drive memory."""

    def __init__(self, size: int = 2):
        self.size = size
        self._open: OrderedDict[Path | RemoteZarr, xr.Dataset] = OrderedDict()

    def get(self, f: Source) -> xr.Dataset:
        if f.path in self._open:
            self._open.move_to_end(f.path)
            return self._open[f.path]
        while len(self._open) >= self.size:
            self._open.popitem(last=False)[1].close()
        ds = take_kept(f.path, f.member)
        if ds is None:
            ds = normalise(open_source(f.path), f.path, f.member)
        self._open[f.path] = ds
        return ds

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def _open_remote(remote: RemoteZarr) -> xr.Dataset:
    """A zarr store by URL: its metadata checked first, so a wrong URL is one line."""
    import zarr.core.buffer
    from zarr.core.sync import sync

    store = remote.open_store()
    proto = zarr.core.buffer.default_buffer_prototype()
    if all(sync(store.get(key, proto)) is None
           for key in (".zmetadata", ".zgroup", "zarr.json")):
        raise DchagError("no zarr store there (none of .zmetadata, .zgroup, zarr.json)",
                         path=remote.url, fix="check the URL: it names the store's top folder")
    return xr.open_dataset(store, engine="zarr", chunks=None, mask_and_scale=False,
                           decode_times=True, cache=False)


def open_source(path: Path | RemoteZarr) -> xr.Dataset:
    """netCDF, GRIB (cfgrib) or a zarr store, opened lazily with values as stored."""
    remote = isinstance(path, RemoteZarr)
    if not remote:
        path = Path(path)
    if remote or is_zarr(path):
        kind, kwargs = "zarr store", {"engine": "zarr", "chunks": None}
    elif path.suffix.lower() in GRIB_SUFFIXES:
        require("cfgrib", "reading GRIB", "grib", path)
        # no `.idx` index files written beside the user's GRIB
        kind, kwargs = "GRIB file", {"engine": "cfgrib",
                                     "backend_kwargs": {"indexpath": ""}}
    else:
        kind, kwargs = "netCDF file", {"engine": "netcdf4"}
        import netCDF4

        netCDF4.set_chunk_cache(CHUNK_CACHE_BYTES)
    try:
        if remote:
            return _open_remote(path)
        if kind == "GRIB file":
            return _open_grib(path, kwargs)
        return xr.open_dataset(path, mask_and_scale=False, decode_times=True, cache=False,
                               **kwargs)
    except DchagError:
        raise
    except Exception as exc:  # the readers raise OSError, ValueError, RuntimeError…
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        fix = ("split the GRIB by level type (one of surface or pressure levels per file)"
               if kind == "GRIB file" and "multiple values" in reason else
               "pass ERA5 as netCDF or GRIB from the CDS, or a WeatherBench 2 / ARCO zarr")
        raise DchagError(f"not a readable {kind} ({reason})", path=path, fix=fix) from exc


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open_grib(path: Path, kwargs: dict) -> xr.Dataset:
    """cfgrib skips a message it cannot decode, logging a traceback, and opens the rest:
    a damaged file would silently lose fields. Its log is caught here instead, and any
    skipped message refuses the file by name."""
    logger = logging.getLogger("cfgrib")
    caught = _Collect()
    saved = logger.propagate
    logger.addHandler(caught)
    logger.propagate = False
    try:
        ds = xr.open_dataset(path, mask_and_scale=False, decode_times=True, cache=False,
                             **kwargs)
    finally:
        logger.removeHandler(caught)
        logger.propagate = saved
    if caught.messages:
        ds.close()
        first = caught.messages[0].splitlines()[0]
        raise DchagError(f"damaged GRIB: {len(caught.messages)} message(s) could not be read "
                         f"({first})", path=path, fix="download the file again")
    return ds


def normalise(ds: xr.Dataset, path: Path, member: int | None = None) -> xr.Dataset:
    """One naming and dimension order for every source: CDS netCDF (both generations),
    GRIB through cfgrib (analysis `time` + `step` → valid time; ensemble `number`),
    WeatherBench 2 and ARCO-ERA5 zarr (long names, `level`, (…, longitude, latitude))."""
    if "valid_time" in ds.coords and "time" in ds.dims and ds["valid_time"].dims == ("time",):
        ds = ds.swap_dims({"time": "valid_time"}).drop_vars("time")  # GRIB analyses
    ds = ds.drop_vars([c for c in ("step", "surface", "heightAboveGround", "meanSea")
                       if c in ds.coords and c not in ds.dims])
    ds = _select_member(ds, path, member)
    ds = ds.rename({k: v for k, v in _RENAMES.items() if k in ds.variables or k in ds.dims})
    canonical = [d for d in ("time", "expver", "level", "lat", "lon") if d in ds.dims]
    ds = ds.transpose(*canonical, ...)  # WeatherBench 2 stores longitude before latitude
    if "expver" not in ds.dims:  # a per-time `expver` string is bookkeeping only
        ds = ds.drop_vars("expver", errors="ignore")
    for coord in ("lat", "lon"):
        if coord not in ds.variables:
            raise DchagError(f"no {coord!r} coordinate (expected ERA5 layout: "
                             "valid_time or time, latitude, longitude)", path=path)
    if "time" in ds.variables and "time" not in ds.dims:
        ds = ds.expand_dims("time")
    return ds  # without `time` only for files of constant fields (checked by open_era5)


def _select_member(ds: xr.Dataset, path: Path, member: int | None) -> xr.Dataset:
    """ERA5's ensemble (EDA) comes with a `number` dimension: one member is one store."""
    if "number" not in ds.dims:
        return ds.drop_vars("number", errors="ignore")
    members = [int(m) for m in ds["number"].values]
    if member is None:
        raise DchagError(f"holds {len(members)} ensemble members ({_spans(members)})",
                         path=path, fix="choose one with --member N")
    if member not in members:
        raise DchagError(f"has no ensemble member {member} (members {_spans(members)})",
                         path=path, fix="choose one of its members with --member")
    return ds.sel(number=member, drop=True)


def _spans(values: list[int]) -> str:
    return f"{values[0]}–{values[-1]}" if values == list(range(values[0], values[-1] + 1)) \
        else ", ".join(map(str, values))
