"""Scores a spectroscopist reads (NDVI, red-edge position, relative error per band) and
the paired model − baseline interval."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.eval.paired import paired_difference
from pipelines.metrics.spectra import (
    band_relative_error,
    index_errors,
    ndvi,
    red_edge_position,
)

WL = np.arange(400.0, 901.0, 1.0)


def _edge(start: float, slope: float = 0.004) -> np.ndarray:
    """A leaf-like spectrum: 0.05 up to `start`, then a straight red edge to 0.45."""
    return np.clip(0.05 + slope * (WL - start), 0.05, 0.45)


def test_ndvi_and_the_red_edge_position_of_known_spectra():
    flat = np.full(len(WL), 0.2)
    assert ndvi(flat[:, None], WL)[0] == pytest.approx(0.0)
    leaf = np.where(WL < 700, 0.05, 0.45)
    assert ndvi(leaf[:, None], WL)[0] == pytest.approx((0.45 - 0.05) / 0.5)
    # a straight edge from 0.05 at 690 nm: R670 = 0.05, R780 = 0.41, so their mean 0.23
    # is reached at 735 nm — Guyot and Baret's interpolation between 700 and 740 finds it
    assert red_edge_position(_edge(690.0)[:, None], WL)[0] == pytest.approx(735.0, abs=0.01)
    # 5 nm later: R780 = 0.39, the mean 0.22 is reached at 737.5 nm
    assert red_edge_position(_edge(695.0)[:, None], WL)[0] == pytest.approx(737.5, abs=0.01)


def test_index_errors_score_only_the_given_pixels_and_need_the_bands():
    orig = np.stack([_edge(690.0)] * 4, axis=1).reshape(len(WL), 2, 2)
    recon = orig.copy()
    recon[:, 0, 0] = _edge(695.0)  # its red-edge position 2.5 nm later, same NDVI
    pixels = np.zeros((2, 2), bool)
    pixels[0, 0] = pixels[1, 1] = True
    err = index_errors(orig, recon, WL, pixels)
    assert err["red_edge_nm"] == pytest.approx(1.25, abs=0.01)  # 2.5 nm on one of two
    assert err["ndvi"] == pytest.approx(0.0)  # both reach the plateau before 800 nm
    recon = orig.copy()
    recon[WL < 690, 1, 1] += 0.05  # twice the red: NDVI 0.35 / 0.55 instead of 0.4 / 0.5
    err = index_errors(orig, recon, WL, pixels)
    assert err["ndvi"] == pytest.approx((0.8 - 0.35 / 0.55) / 2)
    visible_only = WL < 700
    assert np.isnan(index_errors(orig[visible_only], recon[visible_only], WL[visible_only],
                                 pixels)["ndvi"])


def test_relative_error_per_band_divides_by_the_bands_own_reflectance():
    orig = np.stack([np.full((3, 3), 0.02), np.full((3, 3), 0.5)])
    recon = orig + 0.01
    pixels = np.ones((3, 3), bool)
    np.testing.assert_allclose(band_relative_error(orig, recon, pixels), [0.5, 0.02])


def test_the_paired_interval_resamples_whole_cubes():
    model = np.array([1.0, 1.1, 2.0, 2.2, 3.0, 2.9])
    base = np.array([1.5, 1.4, 2.1, 2.0, 3.5, 3.6])
    cubes = np.array(["a", "a", "b", "b", "c", "c"])
    p = paired_difference(model, base, cubes)
    assert p.mean == pytest.approx(np.mean(model - base))
    assert p.samples == 6 and p.clusters == 3 and p.wins == pytest.approx(5 / 6)
    cube_means = [(model - base)[cubes == c].mean() for c in "abc"]
    # the cluster bootstrap cannot leave the range of the cubes' own means
    assert min(cube_means) - 1e-12 <= p.low < p.mean < p.high <= max(cube_means) + 1e-12
    # the same differences, each its own cluster, give a narrower interval
    single = paired_difference(model, base, np.arange(6))
    assert single.high - single.low < p.high - p.low
    assert np.isnan(paired_difference(np.array([np.nan]), np.array([1.0]), ["a"]).mean)
