"""Bands absent from the input: the two absent-band baselines, the interior split, and
the scores `eval masks` stores for them, recomputed from the stores."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from pipelines.eval.absent_bands import AbsentScorer, absent_verdict, interior_bands, low_rank_bands
from pipelines.eval.inpaint import principal_spectra, spectral_fill
from tests.runner import app, runner


def _mixtures(rng: np.random.Generator, n: int, wl: np.ndarray) -> np.ndarray:
    """(band, n) spectra, each a positive mixture of three curved endmembers."""
    ends = np.stack([np.exp(-((wl - c) / 60.0) ** 2) for c in (480.0, 650.0, 820.0)])
    return ends.T @ rng.uniform(0.1, 1.0, (3, n))


def test_interior_bands_need_a_present_band_on_each_side():
    wl = np.array([400.0, 450, 500, 550, 600])
    absent = np.array([True, False, True, False, True])
    np.testing.assert_array_equal(interior_bands(wl, absent), [False, False, True, False, False])
    assert not interior_bands(wl, np.array([True, True, False, False, False])).any()


def test_low_rank_rebuilds_a_mixture_exactly_where_interpolation_cannot():
    """Spectra that are mixtures of the library's endmembers: three components span them,
    so the fit to the present bands gives the absent ones exactly; a straight line across
    a gap in a curved spectrum does not."""
    rng = np.random.default_rng(0)
    wl = np.linspace(400, 900, 60)
    basis = principal_spectra(_mixtures(rng, 500, wl).T)
    assert basis[1].shape[0] <= 4
    cube = _mixtures(rng, 36, wl).reshape(60, 6, 6)
    absent = (wl > 600) & (wl < 700)
    got = low_rank_bands(cube, absent, basis)
    np.testing.assert_allclose(got, cube, atol=1e-9)
    line = spectral_fill(cube, wl, absent)
    assert np.abs(line - cube)[absent].max() > 1e-3

    scorer = AbsentScorer(wl, absent, basis)
    visible = np.ones((6, 6), bool)
    scorer.add(cube, line, visible)  # a "model" that interpolates: ties interpolation
    s = scorer.scores()
    assert s.methods == ("model", "spectral_interpolation", "low_rank")
    rmse = s.rmse_by_method(interior=True)
    assert rmse["model"] == pytest.approx(rmse["spectral_interpolation"])
    assert rmse["low_rank"] < 1e-9
    assert "trails low rank" in absent_verdict(s, interior=True)


def test_eval_masks_scores_absent_bands_against_both_baselines(tmp_path, mae_run,
                                                               sample_appl_zarr):
    """A run's held-out cube with 600–700 nm absent: the model, spectral interpolation
    and the low-rank fill from the other cubes, on the visible pixels, as stored."""
    run = mae_run
    recon = tmp_path / "rec.zarr"
    r = runner.invoke(app, ["predict", "masks", "--run", str(run), "--data",
                            str(sample_appl_zarr), "--drop-channels", "600-700", "--out",
                            str(recon)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "masks", "--recon", str(recon), "--data",
                            str(sample_appl_zarr), "--out", str(tmp_path / "scores")])
    assert r.exit_code == 0, r.output
    assert "absent bands (the " in r.output and "interior ones, visible pixels)" in r.output
    s = xr.open_zarr(tmp_path / "scores" / "mask_scores.zarr")
    assert list(s.absent_method.values) == ["model", "spectral_interpolation", "low_rank"]

    rec = zarr.open_group(str(recon), mode="r")
    data = zarr.open_group(str(sample_appl_zarr), mode="r")
    wl = rec["wavelength"][:]
    absent = rec["dropped"][:].astype(bool)
    r0, c0, h, w = rec.attrs["crop"]
    model, line = [], []
    for i, k in enumerate(rec["sample_index"][:]):
        orig = data["cube"][k][:, r0:r0 + h, c0:c0 + w].astype(np.float64)
        seen = ~rec["masked"][i].astype(bool)
        got = rec["reconstruction"][i].astype(np.float64)
        model.append(((got - orig)[absent][:, seen] ** 2).mean())
        # spectral interpolation written out by hand, band by band
        have = np.flatnonzero(~absent)
        fill = orig.copy()
        for b in np.flatnonzero(absent):
            lo, hi = have[have < b].max(), have[have > b].min()
            t = (wl[b] - wl[lo]) / (wl[hi] - wl[lo])
            fill[b] = (1 - t) * orig[lo] + t * orig[hi]
        line.append(((fill - orig)[absent][:, seen] ** 2).mean())
    by = s.absent_band_rmse_by_method
    assert by.sel(absent_method="model").item() == pytest.approx(np.sqrt(np.mean(model)),
                                                                 rel=1e-6)
    assert by.sel(absent_method="spectral_interpolation").item() == pytest.approx(
        np.sqrt(np.mean(line)), rel=1e-6)
    # every absent band is interior here (present bands on both sides of 600–700 nm)
    np.testing.assert_allclose(s.interior_absent_rmse_by_method.values, by.values)
    assert s.attrs["interior_absent_bands"] == int(absent.sum())
    assert np.isfinite(by.sel(absent_method="low_rank").item())
