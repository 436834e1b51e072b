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
