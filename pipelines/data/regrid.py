"""Regridding regular lat-lon fields to a target grid with separable sparse weights.

On regular lat-lon grids both bilinear interpolation and first-order conservative
remapping factor into a latitude matrix and a longitude matrix, so a field is regridded
as `W_lat @ field @ W_lon.T` (CDO's weights agree to 1e-13). How the weights are applied
depends on how much of the field they use (`regrid_kernel`): a bilinear regrid to a
coarse grid reads only the source points it needs and applies the product of the two
matrices to them; a conservative one, which needs every point, applies the latitude
matrix as one sparse product over a batch of fields and the longitude matrix as a
dense one. `dchag bench regrid` measures both against xarray, scipy and pydata-sparse.

Weights are built on sorted coordinates and their columns mapped back to the source's own
order, so data stored north-to-south (ERA5) or on -180..180 longitudes is never copied or
flipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pipelines.data.grid import LatLonGrid, is_global_lon, lat_bounds, lon_bounds
from pipelines.data.options import REGRID_METHODS
from pipelines.data.regrid_kernel import SparseApply
from pipelines.errors import DchagError

Method = Literal["bilinear", "conservative"]
METHODS = REGRID_METHODS


def _to_original_columns(w: sp.csr_matrix, order: np.ndarray) -> sp.csr_matrix:
    """Columns of `w` refer to sorted coordinates; renumber them to the source's order."""
    coo = w.tocoo()
    return sp.csr_matrix((coo.data, (coo.row, order[coo.col])), shape=w.shape)


def linear_interp_matrix(src: np.ndarray, tgt: np.ndarray) -> sp.csr_matrix:
    """Sparse (n_tgt × n_src) linear interpolation on ascending `src`; targets beyond the
    ends take the end value (clamp). Used for latitudes and for spectral bands."""
    n = src.size
    i = np.clip(np.searchsorted(src, tgt, side="right") - 1, 0, n - 2)
    w1 = np.clip((tgt - src[i]) / (src[i + 1] - src[i]), 0.0, 1.0)
    rows = np.repeat(np.arange(tgt.size), 2)
    cols = np.stack([i, i + 1], axis=1).ravel()
    vals = np.stack([1 - w1, w1], axis=1).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(tgt.size, n))


def _bilinear_lon(src: np.ndarray, tgt: np.ndarray) -> sp.csr_matrix:
    """Linear in longitude, periodic: the seam between the last and first column is bridged."""
    n = src.size
    ext = np.concatenate([src, [src[0] + 360.0]])
    t = np.mod(tgt - src[0], 360.0) + src[0]
    i = np.clip(np.searchsorted(ext, t, side="right") - 1, 0, n - 1)
    w1 = (t - ext[i]) / (ext[i + 1] - ext[i])
    rows = np.repeat(np.arange(tgt.size), 2)
    cols = np.stack([i, (i + 1) % n], axis=1).ravel()
    vals = np.stack([1 - w1, w1], axis=1).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(tgt.size, n))


def _overlap_matrix(src_lo: np.ndarray, src_hi: np.ndarray,
                    tgt_lo: np.ndarray, tgt_hi: np.ndarray) -> np.ndarray:
    """Length of the overlap of every target interval with every source interval."""
    lo = np.maximum(tgt_lo[:, None], src_lo[None, :])
    hi = np.minimum(tgt_hi[:, None], src_hi[None, :])
    return np.maximum(hi - lo, 0.0)


def _normalise_rows(w: np.ndarray, what: str) -> sp.csr_matrix:
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise DchagError(f"the source grid does not cover every target cell in {what}",
                         fix="use a global source grid")
    out = sp.csr_matrix(w / total)
    out.eliminate_zeros()
    return out


def _conservative_lat(src: np.ndarray, tgt: np.ndarray) -> sp.csr_matrix:
    """Area-weighted: on the sphere a latitude band's area is proportional to Δ sin(lat)."""
    sb = np.sin(np.deg2rad(lat_bounds(src)))
    tb = np.sin(np.deg2rad(lat_bounds(tgt)))
    return _normalise_rows(_overlap_matrix(sb[:-1], sb[1:], tb[:-1], tb[1:]), "latitude")


def _conservative_lon(src: np.ndarray, tgt: np.ndarray, periodic: bool = True
                      ) -> sp.csr_matrix:
    if not periodic:  # a regional source: its cells end half a spacing beyond the centres
        sb, tb = _line_bounds(src), _line_bounds(tgt)
        return _normalise_rows(_overlap_matrix(sb[:-1], sb[1:], tb[:-1], tb[1:]), "longitude")
    sb = lon_bounds(src)
    tb = lon_bounds(tgt)
    w = np.zeros((tgt.size, src.size))
    for shift in (-360.0, 0.0, 360.0):  # intervals on a circle: try every wrap
        w += _overlap_matrix(sb[:-1] + shift, sb[1:] + shift, tb[:-1], tb[1:])
    return _normalise_rows(w, "longitude")


def _line_bounds(c: np.ndarray) -> np.ndarray:
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid, [c[-1] + (c[-1] - c[-2]) / 2]])


@dataclass(frozen=True)
class SeparableRegridder:
    """`W_lat` (n_tlat × n_slat) and `W_lon` (n_tlon × n_slon), columns in source order."""

    w_lat: sp.csr_matrix
    w_lon: sp.csr_matrix
    method: str

    @property
    def source_shape(self) -> tuple[int, int]:
        return (self.w_lat.shape[1], self.w_lon.shape[1])

    @property
    def preserves_constants(self) -> bool:
        """Every target is a weighted mean (weights sum to one), so an affine change of
        units commutes with regridding."""
        return True

    @property
    def target_shape(self) -> tuple[int, int]:
        return (self.w_lat.shape[0], self.w_lon.shape[0])

    @cached_property
    def kernel(self) -> SparseApply | None:
        """The combined weights applied to the points they use, when that is a small part
        of the field (bilinear to a coarser grid); None when the separable product is
        the faster way (conservative remapping uses every point)."""
        combined = SparseApply(sp.kron(self.w_lat, self.w_lon, format="csr"),
                               self.source_shape)
        return combined if combined.gather else None

    @cached_property
    def _separable(self) -> dict:
        return {"lat": {np.dtype(t): self.w_lat.astype(t) for t in (np.float32, np.float64)},
                "lon_t": {np.dtype(t): self.w_lon.T.toarray().astype(t)
                          for t in (np.float32, np.float64)}, "blocks": {}}

    def _lat_block(self, dtype: np.dtype, n: int) -> sp.csr_matrix:
        blocks = self._separable["blocks"]
        if (dtype, n) not in blocks:
            w = self._separable["lat"][dtype]
            blocks[(dtype, n)] = w if n == 1 else sp.block_diag([w] * n, format="csr")
        return blocks[(dtype, n)]

    def apply(self, fields: np.ndarray) -> np.ndarray:
        """Regrid `(..., nlat, nlon)` → `(..., n_tlat, n_tlon)`, float32 out."""
        lead = fields.shape[:-2]
        if fields.shape[-2:] != self.source_shape:
            raise ValueError(f"fields have grid {fields.shape[-2:]}, regridder expects "
                             f"{self.source_shape}")
        if self.kernel is not None:
            out = self.kernel.apply(fields)
            return np.asarray(out, np.float32).reshape(*lead, *self.target_shape)
        nlat, nlon = self.source_shape
        dtype = np.dtype(np.float64 if fields.dtype == np.float64 else np.float32)
        flat = np.ascontiguousarray(fields.reshape(-1, nlat, nlon), dtype=dtype)
        n = flat.shape[0]
        per_call = max(1, 2_000_000 // max(self.w_lat.nnz, 1))
        tmp = np.empty((n, self.target_shape[0], nlon), dtype)
        for s in range(0, n, per_call):  # latitude: one sparse product per batch
            k = min(per_call, n - s)
            tmp[s:s + k] = (self._lat_block(dtype, k) @ flat[s:s + k].reshape(k * nlat, nlon)
                            ).reshape(k, -1, nlon)
        out = tmp @ self._separable["lon_t"][dtype]  # longitude: dense (nlon × n_tlon)
        return np.asarray(out, np.float32).reshape(*lead, *self.target_shape)


def build_regridder(source: LatLonGrid, target: LatLonGrid, method: str) -> SeparableRegridder:
    """Separable weights from `source` (any orientation) to `target` (ascending lat).

    A source that goes all the way round in longitude is treated as periodic (the seam is
    bridged); a regional one is interpolated only inside its own span (`check_covers`
    refuses targets outside it before we get here)."""
    if method not in METHODS:
        raise DchagError(f"unknown regrid method {method!r}", fix=f"choose one of {METHODS}")
    periodic = is_global_lon(source)
    lat_order = np.argsort(source.lat)
    west = 0.0 if periodic else float(np.min(source.lon))
    lon_east = np.mod(source.lon - west, 360.0)
    lon_order = np.argsort(lon_east)
    s_lat = source.lat[lat_order]
    s_lon = lon_east[lon_order] + west
    t_lat = np.asarray(target.lat, float)
    t_lon = np.mod(np.asarray(target.lon, float) - west, 360.0) + west
    if method == "bilinear":
        w_lat = linear_interp_matrix(s_lat, t_lat)
        w_lon = _bilinear_lon(s_lon, t_lon) if periodic else linear_interp_matrix(s_lon, t_lon)
    else:
        w_lat = _conservative_lat(s_lat, t_lat)
        w_lon = _conservative_lon(s_lon, t_lon, periodic)
    return SeparableRegridder(
        w_lat=_to_original_columns(w_lat, lat_order),
        w_lon=_to_original_columns(w_lon, lon_order),
        method=method,
    )


@dataclass(frozen=True)
class SparseRegridder:
    """A general (n_target_points × n_source_points) weight matrix, e.g. from xESMF or CDO.

    Points are flattened row-major (`ilat * nlon + ilon`) in the source's own latitude
    order, which is how xESMF and CDO number them.
    """

    weights: sp.csr_matrix
    source_shape: tuple[int, int]
    target_shape: tuple[int, int]
    method: str

    @cached_property
    def _apply(self) -> SparseApply:
        return SparseApply(self.weights, self.source_shape)

    @property
    def kernel(self) -> SparseApply | None:
        return self._apply if self._apply.gather else None

    @property
    def preserves_constants(self) -> bool:
        return self._apply.sums_to_one

    def apply(self, fields: np.ndarray) -> np.ndarray:
        lead = fields.shape[:-2]
        if fields.shape[-2:] != self.source_shape:
            raise ValueError(f"fields have grid {fields.shape[-2:]}, weights expect "
                             f"{self.source_shape}")
        out = self._apply.apply(fields)
        return np.asarray(out, dtype=np.float32).reshape(*lead, *self.target_shape)


Regridder = SeparableRegridder | SparseRegridder
