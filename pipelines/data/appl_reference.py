"""Reflectance from a scan: the dark and white references it is calibrated with, matched
by wavelength, and the checks that refuse values no calibrated cube can hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.data.appl_transform import band_matrix
from pipelines.data.envi_read import CubeSource, EnviCube, open_cube
from pipelines.errors import DchagError

NEGATIVE_TOLERANCE = -0.01  # dark-current noise; anything below is a calibration problem


class Reference:
    """Mean dark or white reference per (column, band), or per band when widths differ,
    matched to a scan by wavelength (linear interpolation between the reference's bands),
    never by band position: a reference on another band grid is resampled, and one that
    does not cover the scan's wavelengths is refused."""

    def __init__(self, path: Path):
        cube = open_cube(CubeSource(header=path, sample_id=path.stem), scale=1.0)
        self.per_column = np.asarray(cube.memmap, dtype=np.float64).mean(axis=0)  # (cols, bands)
        self.wavelengths = cube.wavelengths
        self.path = path

    def check_covers(self, scan: EnviCube) -> None:
        lo, hi = self.wavelengths.min(), self.wavelengths.max()
        if scan.wavelengths.min() < lo - 1e-6 or scan.wavelengths.max() > hi + 1e-6:
            raise DchagError(f"reference covers {lo:g}–{hi:g} nm but the scan "
                             f"{scan.source.header.name} has {scan.wavelengths.min():g}–"
                             f"{scan.wavelengths.max():g} nm", path=self.path,
                             fix="use a dark/white reference recorded with the scan's sensor")

    def values(self, cols: int, scan_nm: np.ndarray) -> np.ndarray:
        """Reference at wavelengths `scan_nm`: (1, cols, k), or (1, 1, k) across widths."""
        if self.wavelengths.size == scan_nm.size and np.allclose(self.wavelengths, scan_nm):
            ref = self.per_column
        else:
            ref = (band_matrix(self.wavelengths, scan_nm, self.path) @ self.per_column.T).T
        if ref.shape[0] == cols:
            return ref[None]
        return ref.mean(axis=0)[None, None]


def check_values(raw: np.ndarray, cube: EnviCube) -> None:
    where = cube.source.header
    nan = np.isnan(raw)
    if nan.any():
        raise DchagError(f"{int(nan.sum())} NaN values", path=where,
                         fix="replace invalid pixels (e.g. with 0) before preparing")
    low = float(raw.min())
    if low < NEGATIVE_TOLERANCE:
        raise DchagError(f"negative reflectance (min {low:.3f}, {int((raw < 0).sum())} values)",
                         path=where, fix="calibrate with --dark/--white or check the data")
    np.clip(raw, 0.0, None, out=raw)
    high = float(raw.max())
    if high > 5.0:
        raise DchagError(f"reflectance up to {high:.0f}: these look like unscaled counts",
                         path=where, fix="set `reflectance scale factor` in the header or pass "
                         "--scale (e.g. 10000), or calibrate with --dark/--white")
