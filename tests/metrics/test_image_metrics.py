"""Hyperspectral reconstruction scores by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.metrics.images import band_psnr_ssim, masked_mse, spectral_angle


def test_masked_mse_counts_masked_pixels_only():
    orig = np.zeros((2, 4, 4))
    recon = np.zeros((2, 4, 4))
    recon[:, 0, 0] = 3.0  # masked
    recon[:, 3, 3] = 100.0  # visible: ignored
    masked = np.zeros((4, 4), bool)
    masked[0, :2] = True
    assert masked_mse(orig, recon, masked) == pytest.approx(9.0 / 2)


def test_psnr_and_ssim_of_a_perfect_and_an_imperfect_band():
    rng = np.random.default_rng(0)
    orig = rng.uniform(size=(2, 16, 16))
    recon = orig.copy()
    recon[1] += 0.1
    psnr, ssim = band_psnr_ssim(orig, recon)
    assert math.isinf(psnr[0]) and ssim[0] == pytest.approx(1.0)
    rng1 = orig[1].max() - orig[1].min()
    assert psnr[1] == pytest.approx(10 * math.log10(rng1**2 / 0.01), rel=1e-9)
    assert ssim[1] < 1.0


def test_spectral_angle_ignores_brightness_not_shape():
    orig = np.ones((3, 1, 2))
    recon = orig.copy()
    recon[:, 0, 0] *= 2.0  # brighter, same shape: 0°
    recon[:, 0, 1] = [1.0, 0.0, 0.0]  # angle between (1,1,1) and (1,0,0)
    both = np.ones((1, 2), bool)
    want = (0.0 + math.degrees(math.acos(1 / math.sqrt(3)))) / 2
    assert spectral_angle(orig, recon, both) == pytest.approx(want)


def test_psnr_and_ssim_score_only_the_masked_pixels():
    """Visible pixels copied unchanged must not lift the scores: the same error on the
    masked half gives the same PSNR as on every pixel (not 10·log10(2) ≈ 3 dB more)."""
    rng = np.random.default_rng(1)
    orig = rng.uniform(size=(3, 16, 16))
    noise = rng.normal(scale=0.05, size=orig.shape)
    masked = np.zeros((16, 16), bool)
    masked[:, :8] = True
    recon = np.where(masked, orig + noise, orig)
    psnr, ssim = band_psnr_ssim(orig, recon, masked)
    for b in range(3):
        span = orig[b].max() - orig[b].min()
        want = 10 * math.log10(span**2 / (noise[b][masked] ** 2).mean())
        assert psnr[b] == pytest.approx(want, rel=1e-12)
    whole_psnr, whole_ssim = band_psnr_ssim(orig, recon)
    assert (whole_psnr - psnr).mean() == pytest.approx(10 * math.log10(2), abs=0.3)
    assert (ssim < whole_ssim).all()  # the copied half no longer counts as perfect
    from skimage.metrics import structural_similarity

    _, ssim_map = structural_similarity(orig[0], recon[0], data_range=orig[0].max() -
                                        orig[0].min(), win_size=7, full=True)
    assert ssim[0] == pytest.approx(ssim_map[masked].mean(), rel=1e-12)
