"""Per-cube transforms: common band grid, common spatial size, plant/background mask."""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
from skimage import morphology
from skimage.transform import resize

from pipelines.data.envi_read import EnviCube
from pipelines.data.regrid import linear_interp_matrix
from pipelines.errors import DchagError

NDVI_RED_NM = 670.0
NDVI_NIR_NM = 800.0


def band_matrix(source_nm: np.ndarray, target_nm: np.ndarray, path: object) -> sp.csr_matrix:
    """(n_target × n_source) linear interpolation in wavelength; refuses extrapolation."""
    _check_covers(source_nm, target_nm, path)
    order = np.argsort(source_nm)
    return _on_columns(linear_interp_matrix(source_nm[order], target_nm), order,
                       source_nm.size)


def _check_covers(source_nm: np.ndarray, target_nm: np.ndarray, path: object) -> None:
    lo, hi = source_nm.min(), source_nm.max()
    if target_nm[0] < lo - 1e-6 or target_nm[-1] > hi + 1e-6:
        raise DchagError(f"requested {target_nm[0]:g}–{target_nm[-1]:g} nm but the sensor covers "
                         f"{lo:g}–{hi:g} nm", path=path, fix="narrow --range to the sensor's")


def _on_columns(w: sp.spmatrix | np.ndarray, columns: np.ndarray, n: int) -> sp.csr_matrix:
    """`w` with its column j moved to column `columns[j]` of an n-column matrix."""
    w = sp.coo_matrix(w)
    return sp.csr_matrix((w.data, (w.row, columns[w.col])), shape=(w.shape[0], n))


def response_matrix(source_nm: np.ndarray, fwhm: np.ndarray, target_nm: np.ndarray,
                    path: object) -> sp.csr_matrix:
    """(n_target × n_source) band resampling by spectral response, for headers with `fwhm`:
    each target band (Gaussian, its width the grid spacing) averages the source bands it
    overlaps, weighted by the overlap with each band's width (spectral's BandResampler).
    Broad bands are thus averaged, not point-sampled as linear interpolation would."""
    _check_covers(source_nm, target_nm, path)
    return _response(source_nm.tobytes(), fwhm.tobytes(), target_nm.tobytes(), str(path))


@functools.lru_cache(maxsize=16)  # cubes of one sensor share their band grid
def _response(source: bytes, widths: bytes, target: bytes, path: str) -> sp.csr_matrix:
    from spectral.algorithms.resampling import create_resampling_matrix

    source_nm, fwhm = np.frombuffer(source), np.frombuffer(widths)
    target_nm = np.frombuffer(target)
    order = np.argsort(source_nm)
    step = np.gradient(target_nm) if target_nm.size > 1 else np.ones(1)
    m = create_resampling_matrix(source_nm[order], fwhm[order], target_nm, np.abs(step))
    gaps = np.flatnonzero(np.isnan(m).any(axis=1))
    if gaps.size:
        raise DchagError(f"no band's fwhm reaches {target_nm[gaps[0]]:g} nm ({gaps.size} of "
                         f"{target_nm.size} target bands uncovered)", path=path,
                         fix="check the header's fwhm, or narrow --range")
    return _on_columns(m, order, source_nm.size)


def cube_band_matrix(cube: EnviCube, target_nm: np.ndarray) -> sp.csr_matrix:
    """(target bands × the file's bands): by spectral response where the header gives
    `fwhm`, else linear in wavelength; bands the bad-band list marks get no weight."""
    good = cube.good_bands
    nm = cube.wavelengths[good]
    w = (response_matrix(nm, cube.fwhm[good], target_nm, cube.source.header)
         if cube.fwhm is not None else band_matrix(nm, target_nm, cube.source.header))
    return _on_columns(w, good, cube.shape[2])


def ignored_pixels(raw: np.ndarray, ignore: float | None) -> np.ndarray:
    """(rows, cols): pixels holding the ignore value in any of these bands."""
    if ignore is None:
        return np.zeros(raw.shape[:2], bool)
    return (np.isnan(raw) if np.isnan(ignore) else raw == np.float32(ignore)).any(axis=-1)


def square_crop(rows: int, cols: int) -> tuple[slice, slice]:
    """The largest centred square."""
    side = min(rows, cols)
    r0, c0 = (rows - side) // 2, (cols - side) // 2
    return slice(r0, r0 + side), slice(c0, c0 + side)


def fit_spatial(block: np.ndarray, size: int, mode: str) -> np.ndarray:
    """(rows, cols, k) → (size, size, k): `resize` centre-crops to a square then resamples
    with anti-aliasing; `crop` takes the centred size×size window unchanged."""
    rows, cols = block.shape[:2]
    if mode == "crop":
        if rows < size or cols < size:
            raise DchagError(f"cube is {rows}×{cols}, smaller than --size {size}",
                             fix="use --spatial resize or a smaller --size")
        r0, c0 = (rows - size) // 2, (cols - size) // 2
        return block[r0:r0 + size, c0:c0 + size]
    rs, cs = square_crop(rows, cols)
    square = block[rs, cs]
    if square.shape[0] == size:
        return square
    return resize(square, (size, size, block.shape[2]), order=1, anti_aliasing=True,
                  preserve_range=True).astype(np.float32)


def ndvi_mask(cube: np.ndarray, wavelengths: np.ndarray, threshold: float,
              min_size: int) -> np.ndarray | None:
    """Plant pixels: NDVI = (R800 − R670)/(R800 + R670) above `threshold`, then a
    morphological opening (radius 1) to drop speckle, objects smaller than `min_size`
    pixels removed and holes of that size filled. None when 670/800 nm are not covered.

    cube is (bands, y, x) reflectance."""
    if wavelengths.min() > NDVI_RED_NM + 5 or wavelengths.max() < NDVI_NIR_NM - 5:
        return None
    red = cube[int(np.argmin(np.abs(wavelengths - NDVI_RED_NM)))].astype(np.float64)
    nir = cube[int(np.argmin(np.abs(wavelengths - NDVI_NIR_NM)))].astype(np.float64)
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    mask = morphology.opening(ndvi > threshold, morphology.disk(1))
    mask = morphology.remove_small_objects(mask, max_size=min_size - 1)
    return morphology.remove_small_holes(mask, max_size=min_size - 1)
