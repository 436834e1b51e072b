"""Regrid speed on full-resolution ERA5 fields: dchag next to its peers, in one run.

Every method regrids the same float32 0.25° fields (721×1440, latitude 90→−90) to the
5.625° grid (32×64) with the same bilinear weights, except xarray.interp, which computes
its own (and is not periodic). Repeats are interleaved — method A, B, C, then A, B, C
again — and the median is reported, so a slow moment of the machine hits all alike.

The memory-bandwidth limit is measured too: the read rate of one core over a large
array, divided by the bytes a field's regrid must read (the source rows its weights
touch). dchag's rate is reported as a share of that limit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import xarray as xr

from pipelines.data.grid import LatLonGrid, weatherbench_grid
from pipelines.data.regrid import SparseRegridder, build_regridder

PYDATA = "pydata-sparse (xESMF ≥ 0.8 apply)"


@dataclass
class RegridBenchResult:
    method: str
    source_grid: str
    target_grid: str
    fields: int
    repeats: int
    fields_per_s: dict[str, float | None]  # method → median rate; None: not installed
    bandwidth_gb_per_s: float
    bytes_read_per_field: int
    bandwidth_limit_fields_per_s: float
    dchag_share_of_limit: float
    best_peer: str
    dchag_vs_best_peer: float
    weights_file_vs_native: float
    max_abs_diff_vs_xarray: float
    max_abs_diff_vs_scipy: float
    prep_fields_per_s: float | None = None
    notes: list[str] = field(default_factory=list)

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


def read_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """One core's read rate (GB/s): the best of summing a large float32 array."""
    a = np.ones(megabytes * 2**20 // 4, np.float32)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t0)
    return a.nbytes / best / 1e9


def _competitors(weights: sp.csr_matrix, data: np.ndarray, shape_out: tuple[int, int]
                 ) -> tuple[dict[str, Callable[[], object]], list[str]]:
    flat = data.reshape(data.shape[0], -1)
    notes = []
    runs: dict[str, Callable[[], object]] = {
        "scipy CSR (batched, W @ X.T)": lambda: (weights @ flat.T).T,
        "scipy CSR (field by field)": lambda: np.stack([weights @ f for f in flat]),
    }
    try:
        import sparse

        # as xESMF ≥ 0.8 applies them: 4-D weights (out_lat, out_lon, in_lat, in_lon),
        # np.tensordot over the two spatial axes, dispatched to pydata-sparse
        coo = sparse.COO.from_scipy_sparse(weights.astype(np.float32)).reshape(
            (*shape_out, *data.shape[-2:]))
        runs[PYDATA] = lambda: np.tensordot(data, coo, axes=((1, 2), (2, 3)))
        np.tensordot(data[:2], coo, axes=((1, 2), (2, 3)))  # compile numba outside timing
    except ImportError:
        notes.append("pydata-sparse is not installed (pip install 'dchag[bench]' or "
                     "pip install sparse): its rate is left out")
    return runs, notes


def bench_regrid(fields: int = 64, xarray_fields: int = 4, resolution: float = 0.25,
                 repeats: int = 5) -> RegridBenchResult:
    nlat, nlon = round(180 / resolution) + 1, round(360 / resolution)
    source = LatLonGrid(lat=np.linspace(90, -90, nlat), lon=resolution * np.arange(nlon))
    target = weatherbench_grid()
    data = smooth_fields(fields, source.lat, source.lon)
    native = build_regridder(source, target, "bilinear")
    weights = sp.kron(native.w_lat, native.w_lon, format="csr")
    from_file = SparseRegridder(weights, source.shape, target.shape, "weights:bench")
    native.apply(data[:2]), from_file.apply(data[:2])  # build kernels outside the timing
    peers, notes = _competitors(weights.astype(np.float32), data, target.shape)
    methods: dict[str, tuple[Callable[[], object], int]] = {
        "dchag": (lambda: native.apply(data), fields),
        "dchag --weights FILE": (lambda: from_file.apply(data), fields),
        **{name: (fn, fields) for name, fn in peers.items()},
    }
    da = xr.DataArray(data[:xarray_fields], dims=("field", "lat", "lon"),
                      coords={"lat": source.lat, "lon": source.lon})
    methods["xarray.interp"] = (lambda: da.interp(lat=target.lat, lon=target.lon,
                                                  method="linear"), xarray_fields)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):  # interleaved
        for name, (fn, _n) in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    rates: dict[str, float | None] = {name: n / statistics.median(times[name])
                                      for name, (_fn, n) in methods.items()}
    if PYDATA not in rates:
        rates[PYDATA] = None
    mine = native.apply(data[:xarray_fields])
    ref = da.interp(lat=target.lat, lon=target.lon, method="linear").values
    inner = target.lon <= source.lon[-1]  # xarray leaves NaN across the seam
    scipy_ref = (weights @ data[:xarray_fields].reshape(xarray_fields, -1).T.astype(
        np.float64)).T.reshape(mine.shape)
    bandwidth = read_bandwidth()
    rows = np.unique(weights.indices // nlon).size
    bytes_per_field = rows * nlon * 4
    limit = bandwidth * 1e9 / bytes_per_field
    peer_rates = {k: v for k, v in rates.items() if v is not None and not
                  k.startswith("dchag")}
    best_peer = max(peer_rates, key=peer_rates.get)
    return RegridBenchResult(
        method="bilinear", source_grid=f"{nlat}x{nlon}",
        target_grid=f"{target.shape[0]}x{target.shape[1]}", fields=fields, repeats=repeats,
        fields_per_s=rates, bandwidth_gb_per_s=bandwidth, bytes_read_per_field=bytes_per_field,
        bandwidth_limit_fields_per_s=limit, dchag_share_of_limit=rates["dchag"] / limit,
        best_peer=best_peer, dchag_vs_best_peer=rates["dchag"] / peer_rates[best_peer],
        weights_file_vs_native=rates["dchag --weights FILE"] / rates["dchag"],
        max_abs_diff_vs_xarray=float(np.nanmax(np.abs(ref[..., inner] - mine[..., inner]))),
        max_abs_diff_vs_scipy=float(np.abs(scipy_ref - mine).max()), notes=notes)


def bench_prep_rate(sources: list[Path], preset: str, workdir: Path) -> float:
    """End-to-end `prep era5` fields/s (netCDF decoding included) on the given files."""
    from pipelines.data.era5_prep import Era5PrepConfig, prep_era5

    summary = prep_era5(Era5PrepConfig(sources=sources, out=workdir / "bench-era5.zarr",
                                       preset=preset, overwrite=True))
    return summary.fields_per_s
