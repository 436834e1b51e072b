"""What a spectroscopist reads off a reflectance spectrum, for scoring reconstructions.

- relative error per band: the RMSE of one band over the scored pixels, divided by that
  band's mean reflectance there, so the dark visible bands (a few per cent) and the
  bright near infrared (half the light) are judged alike — a curve over wavelength;
- NDVI = (R800 − R670) / (R800 + R670), the greenness index every vegetation study
  starts with;
- the red-edge position (REP, nm), by Guyot & Baret's (1988) linear four-point method:
  the wavelength between 700 and 740 nm where reflectance reaches the mean of R670 and
  R780. It moves with chlorophyll content and stress, and it depends on the shape of the
  steepest part of a plant spectrum, the part inpainting blurs first. PRI (531/570 nm)
  was the other candidate; it measures xanthophyll changes of a few tenths of a per cent
  of reflectance, below the noise of the cubes scored here.

Each reflectance R_λ is the mean of the bands within `HALF_WIDTH_NM` of λ (at least the
nearest band), so the indices mean the same on any band grid.
"""

from __future__ import annotations

import numpy as np

HALF_WIDTH_NM = 5.0
INDICES = ("ndvi", "red_edge_nm")


def reflectance_at(cube: np.ndarray, wavelength: np.ndarray, nm: float) -> np.ndarray:
    """(…) from `cube` (band, …): the mean over the bands within `HALF_WIDTH_NM` of nm."""
    near = np.abs(wavelength - nm) <= HALF_WIDTH_NM
    if not near.any():
        near = np.abs(wavelength - nm) == np.abs(wavelength - nm).min()
    return np.asarray(cube, np.float64)[near].mean(axis=0)


def covers(wavelength: np.ndarray) -> bool:
    """Whether the bands reach both ends of what the indices need (670…800 nm)."""
    return bool(wavelength.min() <= 670 + HALF_WIDTH_NM and
                wavelength.max() >= 800 - HALF_WIDTH_NM)


def ndvi(cube: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
    red = reflectance_at(cube, wavelength, 670.0)
    nir = reflectance_at(cube, wavelength, 800.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (nir - red) / (nir + red)


def red_edge_position(cube: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
    r = {nm: reflectance_at(cube, wavelength, nm) for nm in (670.0, 700.0, 740.0, 780.0)}
    inflection = (r[670.0] + r[780.0]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return 700.0 + 40.0 * (inflection - r[700.0]) / (r[740.0] - r[700.0])


def index_errors(orig: np.ndarray, recon: np.ndarray, wavelength: np.ndarray,
                 pixels: np.ndarray) -> dict[str, float]:
    """Mean absolute error of each index over `pixels` (y, x); NaN without pixels or
    without the bands the indices need."""
    if not pixels.any() or not covers(wavelength):
        return dict.fromkeys(INDICES, float("nan"))
    a, b = orig[:, pixels], recon[:, pixels]
    out = {}
    for name, index in (("ndvi", ndvi), ("red_edge_nm", red_edge_position)):
        err = np.abs(index(b, wavelength) - index(a, wavelength))
        out[name] = float(np.nanmean(err)) if np.isfinite(err).any() else float("nan")
    return out


def band_relative_error(orig: np.ndarray, recon: np.ndarray, pixels: np.ndarray
                        ) -> np.ndarray:
    """(band,): each band's RMSE over `pixels` over its mean |reflectance| there."""
    if not pixels.any():
        return np.full(orig.shape[0], np.nan)
    a = np.asarray(orig, np.float64)[:, pixels]
    diff = np.asarray(recon, np.float64)[:, pixels] - a
    scale = np.abs(a).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((diff**2).mean(axis=1)) / np.where(scale > 0, scale, np.nan)
