"""Reconstruction scores for hyperspectral cubes (bands, y, x).

- RMSE / MSE over the masked pixels only (what the model had to predict), all bands;
- PSNR and SSIM per band over the masked pixels only (SSIM: scikit-image's SSIM map
  averaged over them), with the band's data range taken from the original cube, then
  averaged over bands;
- SAM, the spectral angle (degrees) between original and reconstructed spectra, averaged
  over masked plant pixels: insensitive to brightness, sensitive to spectral shape.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def masked_mse(orig: np.ndarray, recon: np.ndarray, masked: np.ndarray) -> float:
    """masked (y, x) bool; orig/recon (bands, y, x)."""
    if not masked.any():
        return float("nan")
    diff = (np.asarray(recon, np.float64) - orig)[:, masked]
    return float((diff**2).mean())


SSIM_CONVENTION = ("masked pixels only: RMSE, MSE and PSNR over the masked pixels; SSIM "
                   "is scikit-image's SSIM map (uniform window) averaged over the masked "
                   "pixels; SAM over masked plant pixels; PSNR's and SSIM's data range is "
                   "each band's range in the original crop")


def band_psnr_ssim(orig: np.ndarray, recon: np.ndarray, masked: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(bands,) PSNR in dB and SSIM of each band, against its own range in `orig`, over
    the `masked` (y, x) pixels only (all pixels when None).

    Visible pixels are copied unchanged into a reconstruction; counting them would lift
    PSNR by 10·log10(1 / mask ratio) and SSIM towards 1. SSIM windows at a mask's edge
    still see visible pixels — the map is averaged over masked pixels only."""
    psnr, ssim = [], []
    small = min(orig.shape[-2:])
    win = min(7, small if small % 2 else small - 1)
    sel = np.ones(orig.shape[-2:], bool) if masked is None else np.asarray(masked, bool)
    if not sel.any():
        nan = np.full(orig.shape[0], np.nan)
        return nan, nan.copy()
    for a, b in zip(np.asarray(orig, np.float64), np.asarray(recon, np.float64), strict=True):
        rng = float(a.max() - a.min()) or 1.0
        mse = float(((a - b)[sel] ** 2).mean())
        with np.errstate(divide="ignore"):  # a perfect band has infinite PSNR
            psnr.append(10 * np.log10(rng**2 / mse) if mse > 0 else np.inf)
        _, ssim_map = structural_similarity(a, b, data_range=rng, win_size=win, full=True)
        ssim.append(float(ssim_map[sel].mean()))
    return np.array(psnr), np.array(ssim)


def spectral_angle(orig: np.ndarray, recon: np.ndarray, pixels: np.ndarray) -> float:
    """Mean angle (degrees) between spectra at `pixels` (y, x) bool."""
    if not pixels.any():
        return float("nan")
    a = np.asarray(orig, np.float64)[:, pixels]
    b = np.asarray(recon, np.float64)[:, pixels]
    cos = (a * b).sum(0) / np.maximum(np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0),
                                      1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())
