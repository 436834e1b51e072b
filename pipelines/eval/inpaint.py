"""Trivial inpainting: what a masked-patch model must beat on the same hidden pixels.

Each baseline fills the hidden pixels of a (band, y, x) cube from its visible ones alone
and keeps the visible pixels as they are (as the MAE reconstruction does), so a score over
the hidden pixels compares like with like:

- `mean_spectrum`: every hidden pixel gets the mean visible spectrum of its cube;
- `nearest_pixel`: the spectrum of the nearest visible pixel (Euclidean, exact via the
  distance transform; ties go to the one scipy's transform picks);
- `interpolated`: per band, piecewise-linear interpolation over a Delaunay triangulation
  of the visible pixels (one triangulation for all bands); hidden pixels outside their
  convex hull take the nearest visible pixel;
- `biharmonic`: scikit-image's biharmonic inpainting per band (the smoothest surface
  through the visible pixels: no kinks at triangle edges, and it reaches past the hull);
- `low_rank`: the literature's standard for gaps in hyperspectral cubes — the visible
  spectra's principal components (as many as hold 99.9 % of their variance, at most 16:
  `pipelines.model.low_rank`), their scores filled spatially by biharmonic inpainting,
  then the spectra rebuilt from the scores. A whole pixel is missing here (every band), so a
  completion of the pixel × band matrix alone could not place it: the scores must come
  from the neighbours, and the rank constraint keeps each filled spectrum a mixture of
  spectra the cube really has (no noise, no shape that is in no visible pixel).

Bands absent from the input altogether (`predict masks --drop-channels`) are filled after
that, at every pixel, by `spectral_fill`: linear in wavelength between the nearest
present bands (the nearest one beyond the ends), so a baseline uses exactly the
information the model had.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.ndimage import distance_transform_edt
from scipy.spatial import QhullError
from skimage.restoration import inpaint_biharmonic

from pipelines.model.low_rank import principal_spectra

BASELINES = ("mean_spectrum", "nearest_pixel", "interpolated", "biharmonic", "low_rank")
ABSENT_BAND_BASELINES = ("spectral_interpolation", "low_rank")


def mean_spectrum(cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    out = cube.copy()
    out[:, hidden] = cube[:, ~hidden].mean(axis=1)[:, None]
    return out


def nearest_pixel(cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    _, (iy, ix) = distance_transform_edt(hidden, return_indices=True)
    return cube[:, iy, ix]


def interpolated(cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    near = nearest_pixel(cube, hidden)
    seen = np.argwhere(~hidden)
    holes = np.argwhere(hidden)
    if len(holes) == 0:
        return near
    try:
        fill = LinearNDInterpolator(seen, cube[:, ~hidden].T)(holes)  # (holes, band)
    except QhullError:  # visible pixels on one line: no triangle to interpolate in
        return near
    out = near.copy()
    inside = ~np.isnan(fill).any(axis=1)
    out[:, holes[inside, 0], holes[inside, 1]] = fill[inside].T
    return out


def biharmonic(cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    if not hidden.any():
        return cube.copy()
    filled = inpaint_biharmonic(np.moveaxis(cube, 0, -1), hidden, channel_axis=-1)
    out = cube.copy()
    out[:, hidden] = np.moveaxis(filled, -1, 0)[:, hidden]
    return out


def low_rank(cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    mean, comps = principal_spectra(cube[:, ~hidden].T)
    scores = np.einsum("kb,byx->kyx", comps, cube - mean[:, None, None])
    filled = biharmonic(scores, hidden)
    out = cube.copy()
    out[:, hidden] = (np.einsum("kb,kn->bn", comps, filled[:, hidden]) + mean[:, None])
    return out


def inpaint(name: str, cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """`cube` (band, y, x) with its `hidden` (y, x) pixels filled by baseline `name`."""
    if not (~hidden).any():
        raise ValueError("every pixel is hidden: nothing to inpaint from")
    return {"mean_spectrum": mean_spectrum, "nearest_pixel": nearest_pixel,
            "interpolated": interpolated, "biharmonic": biharmonic,
            "low_rank": low_rank}[name](cube, hidden)


def spectral_fill(cube: np.ndarray, wavelength: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """`cube` (band, y, x) with its `absent` bands replaced, at every pixel, by linear
    interpolation in wavelength between the nearest present bands."""
    have = np.flatnonzero(~absent)
    out = cube.copy()
    for b in np.flatnonzero(absent):
        hi = int(np.searchsorted(wavelength[have], wavelength[b]))
        lo_band, hi_band = have[max(hi - 1, 0)], have[min(hi, len(have) - 1)]
        span = wavelength[hi_band] - wavelength[lo_band]
        t = 0.0 if span == 0 else (wavelength[b] - wavelength[lo_band]) / span
        out[b] = (1 - t) * cube[lo_band] + t * cube[hi_band]
    return out
