"""Choosing a regridder: our own separable weights, a weights file, or live xESMF.

xESMF needs esmpy (ESMF), which only conda-forge ships; it is imported only when asked
for, so the default path never needs it. A weights file written by xESMF (`S`, `row`,
`col`, 1-based) or by CDO/SCRIP (`remap_matrix`, `src_address`, `dst_address`) is read
and applied as a sparse matrix, which reproduces exactly what that tool computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import xarray as xr

from pipelines.data.grid import LatLonGrid
from pipelines.data.options import REGRID_BACKENDS
from pipelines.data.regrid import Regridder, SparseRegridder, build_regridder
from pipelines.errors import DchagError

BACKENDS = REGRID_BACKENDS
ESMPY_FIX = "install esmpy from conda-forge (`conda install -c conda-forge esmpy xesmf`) " \
            "or use the default --backend native"


def read_weights_file(path: Path, source: LatLonGrid, target: LatLonGrid) -> SparseRegridder:
    """Read xESMF (`S`/`row`/`col`) or SCRIP (`remap_matrix`/…) weights, 1-based indices."""
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as exc:
        raise DchagError(f"not a readable netCDF weights file ({type(exc).__name__})",
                         path=path) from exc
    with ds:
        if {"S", "row", "col"} <= set(ds.variables):
            vals, rows, cols = ds["S"].values, ds["row"].values, ds["col"].values
            kind = "xesmf"
        elif {"remap_matrix", "src_address", "dst_address"} <= set(ds.variables):
            vals = ds["remap_matrix"].values[:, 0]
            rows, cols = ds["dst_address"].values, ds["src_address"].values
            kind = "scrip"
        else:
            raise DchagError("neither an xESMF (S, row, col) nor a SCRIP (remap_matrix, "
                             "src_address, dst_address) weights file", path=path)
    n_in = source.shape[0] * source.shape[1]
    n_out = target.shape[0] * target.shape[1]
    if cols.max() > n_in or rows.max() > n_out or cols.min() < 1 or rows.min() < 1:
        raise DchagError(f"weights address {int(cols.max())} source and {int(rows.max())} "
                         f"target points but the grids have {n_in} and {n_out}", path=path,
                         fix="regenerate the weights for this source grid and the "
                         f"{target.shape[0]}×{target.shape[1]} target")
    w = sp.csr_matrix((vals.astype(np.float64), (rows.astype(np.int64) - 1,
                                                  cols.astype(np.int64) - 1)),
                      shape=(n_out, n_in))
    return SparseRegridder(weights=w, source_shape=source.shape, target_shape=target.shape,
                           method=f"weights:{kind}")


def xesmf_regridder(source: LatLonGrid, target: LatLonGrid, method: str) -> SparseRegridder:
    """Weights computed by xESMF itself (requires esmpy)."""
    try:
        import xesmf
    except ImportError as exc:
        raise DchagError(f"--backend xesmf is not available here ({exc})", fix=ESMPY_FIX) from exc
    src = xr.Dataset(coords={"lat": ("lat", source.lat), "lon": ("lon", source.lon)})
    tgt = xr.Dataset(coords={"lat": ("lat", target.lat), "lon": ("lon", target.lon)})
    regridder = xesmf.Regridder(src, tgt, method, periodic=True)
    w = regridder.weights.data  # a `sparse.COO` matrix (n_out × n_in) in recent xESMF
    w = w.to_scipy_sparse() if hasattr(w, "to_scipy_sparse") else w
    return SparseRegridder(weights=sp.csr_matrix(w), source_shape=source.shape,
                           target_shape=target.shape, method=f"xesmf:{method}")


def make_regridder(source: LatLonGrid, target: LatLonGrid, method: str, backend: str,
                   weights: Path | None) -> Regridder:
    if weights is not None:
        return read_weights_file(weights, source, target)
    if backend == "native":
        return build_regridder(source, target, method)
    if backend == "xesmf":
        return xesmf_regridder(source, target, method)
    raise DchagError(f"unknown regrid backend {backend!r}", fix=f"choose one of {BACKENDS}")
