"""Reconstruction scores for hyperspectral cubes (bands, y, x).

- RMSE / MSE over the masked pixels only (what the model had to predict), all bands;
- PSNR and SSIM per band (scikit-image), with the band's data range taken from the
  original cube, then averaged over bands;
- SAM, the spectral angle (degrees) between original and reconstructed spectra, averaged
  over masked plant pixels: insensitive to brightness, sensitive to spectral shape.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def masked_mse(orig: np.ndarray, recon: np.ndarray, masked: np.ndarray) -> float:
    """masked (y, x) bool; orig/recon (bands, y, x)."""
    if not masked.any():
        return float("nan")
    diff = (np.asarray(recon, np.float64) - orig)[:, masked]
    return float((diff**2).mean())


def band_psnr_ssim(orig: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bands,) PSNR in dB and SSIM, each band against its own range in `orig`."""
    psnr, ssim = [], []
    small = min(orig.shape[-2:])
    win = min(7, small if small % 2 else small - 1)
    for a, b in zip(np.asarray(orig, np.float64), np.asarray(recon, np.float64), strict=True):
        rng = float(a.max() - a.min()) or 1.0
        with np.errstate(divide="ignore"):  # a perfect band has infinite PSNR
            psnr.append(peak_signal_noise_ratio(a, b, data_range=rng))
        ssim.append(structural_similarity(a, b, data_range=rng, win_size=win))
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
