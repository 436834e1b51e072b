"""Regular latitude-longitude grids and the WeatherBench 5.625° target grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.errors import DchagError


@dataclass(frozen=True)
class LatLonGrid:
    """A regular lat-lon grid: 1-D `lat` and `lon` in degrees, in the order the data uses."""

    lat: np.ndarray
    lon: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    def describe(self) -> dict:
        return {
            "nlat": int(self.lat.size), "nlon": int(self.lon.size),
            "lat_first": float(self.lat[0]), "lat_last": float(self.lat[-1]),
            "lon_first": float(self.lon[0]), "lon_last": float(self.lon[-1]),
        }


def weatherbench_grid(resolution: float = 5.625) -> LatLonGrid:
    """WeatherBench's equiangular grid without poles: 32×64 at 5.625°.

    Latitudes are cell centres from -90+res/2 to 90-res/2 (south to north), longitudes
    from 0 eastward, so cells tile the sphere exactly (needed for conservative remapping).
    """
    if not np.isfinite(resolution) or not 0 < resolution <= 90:
        raise DchagError(f"--resolution {resolution} is not a grid spacing in degrees",
                         fix="use e.g. 5.625, 2.8125 or 1.40625")
    nlat = round(180 / resolution)
    nlon = round(360 / resolution)
    if not np.isclose(nlat * resolution, 180) or not np.isclose(nlon * resolution, 360):
        raise DchagError(f"resolution {resolution}° does not divide 180° and 360°",
                         fix="use e.g. 5.625, 2.8125 or 1.40625")
    lat = -90 + resolution / 2 + resolution * np.arange(nlat)
    lon = resolution * np.arange(nlon)
    return LatLonGrid(lat=lat, lon=lon)


def check_regular(lat: np.ndarray, lon: np.ndarray, source: str) -> LatLonGrid:
    """Accept 1-D, strictly monotonic, in-range coordinates; explain anything else."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.ndim != 1 or lon.ndim != 1:
        raise DchagError("latitude/longitude are not 1-D: not a regular lat-lon grid", path=source,
                         fix="regrid curvilinear or reduced Gaussian data to a regular grid first "
                         "(e.g. `cdo remapbil`) or supply --weights")
    if lat.size < 2 or lon.size < 2:
        raise DchagError(f"grid too small ({lat.size}×{lon.size})", path=source)
    for name, c in (("latitude", lat), ("longitude", lon)):
        d = np.diff(c)
        if not (np.all(d > 0) or np.all(d < 0)):
            raise DchagError(f"{name} is not strictly monotonic: not a regular lat-lon grid",
                             path=source)
    if lat.min() < -90 - 1e-6 or lat.max() > 90 + 1e-6:
        raise DchagError("latitudes outside [-90, 90]", path=source)
    if lon.max() - lon.min() >= 360:
        raise DchagError("longitudes span 360° or more (duplicated seam column?)", path=source,
                         fix="drop the repeated column")
    return LatLonGrid(lat=lat, lon=lon)


def lat_bounds(centres_ascending: np.ndarray) -> np.ndarray:
    """Cell edges halfway between centres, outer edges clipped to the poles."""
    c = centres_ascending
    mid = (c[1:] + c[:-1]) / 2
    first = c[0] - (c[1] - c[0]) / 2
    last = c[-1] + (c[-1] - c[-2]) / 2
    return np.clip(np.concatenate([[first], mid, [last]]), -90.0, 90.0)


def lon_bounds(centres_ascending: np.ndarray) -> np.ndarray:
    """Cell edges halfway between centres on the circle (edge i+1 closes cell i)."""
    c = centres_ascending
    nxt = np.concatenate([c[1:], [c[0] + 360.0]])
    prv = np.concatenate([[c[-1] - 360.0], c[:-1]])
    return np.concatenate([[(c[0] + prv[0]) / 2], (c + nxt) / 2])


Region = tuple[float, float, float, float]  # south, north, west, east (degrees)


def parse_region(text: str | None) -> Region | None:
    """`S:N,W:E` in degrees, e.g. `20:60,-130:-60` (west to east, may cross 0°)."""
    if not text:
        return None
    try:
        lat, lon = text.split(",")
        s, n = (float(v) for v in lat.split(":"))
        w, e = (float(v) for v in lon.split(":"))
    except ValueError as exc:
        raise DchagError(f"--region {text!r} is not SOUTH:NORTH,WEST:EAST in degrees",
                         fix="write e.g. --region 20:60,-130:-60") from exc
    if not (-90 <= s < n <= 90) or not all(np.isfinite([w, e])) or w == e:
        raise DchagError(f"--region {text!r}: need -90 ≤ south < north ≤ 90 and west ≠ east")
    return s, n, w, e


def _east_of(lon: np.ndarray, west: float) -> np.ndarray:
    """Degrees east of `west`, in [0, 360)."""
    return np.mod(lon - west, 360.0)


def target_grid(resolution: float, region: Region | None) -> LatLonGrid:
    """The WeatherBench grid, or its points inside `region`."""
    grid = weatherbench_grid(resolution)
    if region is None:
        return grid
    s, n, w, e = region
    lat = grid.lat[(grid.lat >= s) & (grid.lat <= n)]
    lon = grid.lon[_east_of(grid.lon, w) <= _east_of(np.array(e), w)]
    lon = lon[np.argsort(_east_of(lon, w), kind="stable")]
    if lat.size < 2 or lon.size < 2:
        raise DchagError(f"--region holds {lat.size}×{lon.size} points of the "
                         f"{resolution}° grid", fix="choose a larger region")
    return LatLonGrid(lat=lat, lon=lon)


def spacing(c: np.ndarray) -> float:
    return float(np.abs(np.diff(c)).max())


def is_global_lon(grid: LatLonGrid) -> bool:
    """Longitudes go all the way round (periodic): n · Δlon = 360°."""
    d = spacing(grid.lon)
    return abs(grid.lon.size * d - 360.0) < 0.01 * d


def is_global_lat(grid: LatLonGrid) -> bool:
    """Latitudes reach the poles to within one and a half spacings."""
    d = spacing(grid.lat)
    return grid.lat.min() <= -90 + 1.5 * d and grid.lat.max() >= 90 - 1.5 * d


def check_covers(source: LatLonGrid, target: LatLonGrid, path: object,
                 regional: bool) -> None:
    """A global target needs a global source; a regional one a source spanning it."""
    glob = is_global_lon(source) and is_global_lat(source)
    if not regional:
        if not glob:
            span = (f"{source.lat.min():g}…{source.lat.max():g}°N, "
                    f"{source.lon.min():g}…{source.lon.max():g}°E")
            raise DchagError(f"the grid is not global ({span}); a global store would "
                             "invent the missing area", path=path,
                             fix="pass global fields, or --region SOUTH:NORTH,WEST:EAST for "
                             "a regional store")
        return
    lat_ok = is_global_lat(source) or (source.lat.min() <= target.lat.min() + 1e-9
                                       and source.lat.max() >= target.lat.max() - 1e-9)
    lon_ok = is_global_lon(source)
    if not lon_ok:
        west = float(source.lon[np.argmin(_east_of(source.lon, source.lon.min()))])
        reach = _east_of(source.lon, west).max()
        lon_ok = bool(np.all(_east_of(target.lon, west) <= reach + 1e-9))
    if not (lat_ok and lon_ok):
        raise DchagError("the source grid does not cover --region", path=path,
                         fix="choose a region inside the data, or pass larger fields")
