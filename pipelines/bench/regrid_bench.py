"""How fast our separable regrid is on full-resolution ERA5 fields, next to xarray.interp.

Both regrid the same float32 0.25° fields (721×1440, latitude 90→-90) to 32×64; the
result records fields/s for each and the largest difference between the two outputs
away from the longitude seam (xarray.interp is not periodic).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.grid import LatLonGrid, weatherbench_grid
from pipelines.data.regrid import build_regridder


@dataclass
class RegridBenchResult:
    method: str
    source_grid: str
    fields: int
    dchag_fields_per_s: float
    xarray_fields: int
    xarray_fields_per_s: float
    speedup: float
    max_abs_diff_vs_xarray: float
    prep_fields_per_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def smooth_fields(n: int, lat: np.ndarray, lon: np.ndarray, seed: int = 0) -> np.ndarray:
    """Random smooth global fields (sums of low spherical-like harmonics), float32."""
    rng = np.random.default_rng(seed)
    la = np.deg2rad(lat)[:, None]
    lo = np.deg2rad(lon)[None, :]
    out = np.empty((n, lat.size, lon.size), np.float32)
    for i in range(n):
        f = np.zeros((lat.size, lon.size))
        for k in range(1, 6):
            a, b, p = rng.normal(size=3)
            f += a * np.cos(k * lo + p) * np.cos(la) ** k + b * np.sin(k * la)
        out[i] = f
    return out


def _best_rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def bench_regrid(fields: int = 64, xarray_fields: int = 4, resolution: float = 0.25,
                 repeats: int = 3) -> RegridBenchResult:
    nlat, nlon = round(180 / resolution) + 1, round(360 / resolution)
    source = LatLonGrid(lat=np.linspace(90, -90, nlat), lon=resolution * np.arange(nlon))
    target = weatherbench_grid()
    data = smooth_fields(fields, source.lat, source.lon)
    regridder = build_regridder(source, target, "bilinear")
    ours = _best_rate(lambda: regridder.apply(data), fields, repeats)

    da = xr.DataArray(data[:xarray_fields], dims=("field", "lat", "lon"),
                      coords={"lat": source.lat, "lon": source.lon})
    theirs = _best_rate(lambda: da.interp(lat=target.lat, lon=target.lon, method="linear"),
                        xarray_fields, repeats)
    ref = da.interp(lat=target.lat, lon=target.lon, method="linear").values
    mine = regridder.apply(data[:xarray_fields])
    inner = target.lon <= source.lon[-1]  # xarray leaves NaN across the seam
    diff = float(np.nanmax(np.abs(ref[..., inner] - mine[..., inner])))
    return RegridBenchResult(
        method="bilinear", source_grid=f"{nlat}x{nlon}", fields=fields,
        dchag_fields_per_s=ours, xarray_fields=xarray_fields, xarray_fields_per_s=theirs,
        speedup=ours / theirs, max_abs_diff_vs_xarray=diff,
    )


def bench_prep_rate(sources: list[Path], preset: str, workdir: Path) -> float:
    """End-to-end `prep era5` fields/s (netCDF decoding included) on the given files."""
    from pipelines.data.era5_prep import Era5PrepConfig, prep_era5

    summary = prep_era5(Era5PrepConfig(sources=sources, out=workdir / "bench-era5.zarr",
                                       preset=preset, overwrite=True))
    return summary.fields_per_s
