"""Trivial inpainting: what a masked-patch model must beat on the same hidden pixels.

Each baseline fills the hidden pixels of a (band, y, x) cube from its visible ones alone
and keeps the visible pixels as they are (as the MAE reconstruction does), so a score over
the hidden pixels compares like with like:

- `mean_spectrum`: every hidden pixel gets the mean visible spectrum of its cube;
- `nearest_pixel`: the spectrum of the nearest visible pixel (Euclidean, exact via the
  distance transform; ties go to the one scipy's transform picks);
- `interpolated`: per band, piecewise-linear interpolation over a Delaunay triangulation
  of the visible pixels (one triangulation for all bands); hidden pixels outside their
  convex hull take the nearest visible pixel.

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

BASELINES = ("mean_spectrum", "nearest_pixel", "interpolated")


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


def inpaint(name: str, cube: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """`cube` (band, y, x) with its `hidden` (y, x) pixels filled by baseline `name`."""
    if not (~hidden).any():
        raise ValueError("every pixel is hidden: nothing to inpaint from")
    return {"mean_spectrum": mean_spectrum, "nearest_pixel": nearest_pixel,
            "interpolated": interpolated}[name](cube, hidden)


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
