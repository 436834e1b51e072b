"""`dchag eval bands`: the band groups, the three pickers, the study's guarantees, and the
stored importance recomputed through `predict masks --drop-channels`."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from pipelines.data.bands import band_names
from pipelines.eval.band_importance import (
    HeldOut,
    band_groups,
    candidates,
    evenly_spaced,
    low_rank_reconstruct,
    pca_loadings,
    study_bands,
)
from pipelines.eval.inpaint import principal_spectra
from tests.runner import app, one_error_line, runner


def test_groups_split_the_range_into_equal_widths_and_pick_centre_bands():
    wl = np.linspace(400, 900, 101)  # 5 nm apart
    which, edges = band_groups(wl, 5)
    np.testing.assert_allclose(edges[:, 0], [400, 500, 600, 700, 800])
    assert np.bincount(which).tolist() == [20, 20, 20, 20, 21]  # 900 nm joins the last
    np.testing.assert_allclose(wl[candidates(wl, edges)], [450, 550, 650, 750, 850])


def test_fixed_pickers():
    cands = np.array([3, 10, 20, 30, 40])
    assert evenly_spaced(cands, 1) == [3] and evenly_spaced(cands, 3) == [3, 20, 40]
    comps = np.zeros((2, 50))
    comps[0, 30], comps[0, 20], comps[1, 30], comps[1, 10] = 1.0, 0.5, 0.9, 0.4
    # the first component's top band, then the second's best band not picked yet
    assert pca_loadings(cands, comps, 2) == [30, 10]


def _held(seed: int = 0) -> HeldOut:
    rng = np.random.default_rng(seed)
    wl = np.linspace(400, 900, 40)
    ends = np.stack([np.exp(-((wl - c) / 80.0) ** 2) for c in (450.0, 680.0, 860.0)])
    mix = lambda n: (ends.T @ rng.uniform(0.1, 1, (3, n)))  # noqa: E731
    cubes = mix(2 * 25).T.reshape(2, 25, 40).transpose(0, 2, 1).reshape(2, 40, 5, 5)
    return HeldOut(cubes, np.ones((2, 5, 5), bool), wl, principal_spectra(mix(400).T),
                   ["a", "b"])


def test_low_rank_rebuilds_mixtures_from_as_many_bands_as_endmembers():
    held = _held()
    got = low_rank_reconstruct(held.cubes, [5, 20, 35], held.basis)
    np.testing.assert_allclose(got, held.cubes, atol=1e-8)
    assert np.abs(low_rank_reconstruct(held.cubes, [20], held.basis) - held.cubes).max() > 1e-3


def test_greedy_is_nested_and_best_of_the_candidates_at_one_band():
    """With the low-rank fit standing in for the model: forward selection's first band is
    the best single candidate, so no picker beats it at k = 1, and its sets are nested."""
    held = _held()
    study = study_bands(held, lambda cubes, keep: low_rank_reconstruct(cubes, keep,
                                                                       held.basis), 8, 3)
    for m in (0, 1):  # both greedy pickers: here the same criterion, so the same picks
        greedy = study.picks[m]
        for k in range(1, 3):
            assert set(greedy[k - 1][:k]) <= set(greedy[k][:k + 1])
        assert study.rmse[m, 0, 0] <= study.rmse[2:, 0, 0].min() + 1e-12
        assert study.rmse[m, 0, 2] < 1e-6  # three bands span three endmembers
        assert np.all(np.diff(study.rmse[m, 0]) <= 1e-12)  # nested picks never get worse
    np.testing.assert_array_equal(study.picks[0], study.picks[1])
    np.testing.assert_allclose(study.rmse[:, 0], study.rmse[:, 1])
    assert study.group_rmse.shape == (8,) and np.all(study.group_rmse >= 0)


def test_eval_bands_end_to_end_and_importance_matches_predict_masks(
        tmp_path, mae_run, sample_appl_zarr):
    out = tmp_path / "bands"
    r = runner.invoke(app, ["eval", "bands", "--run", str(mae_run), "--data",
                            str(sample_appl_zarr), "--groups", "4", "--k", "2", "--out",
                            str(out)])
    assert r.exit_code == 0, r.output
    assert "its greedy picks" in r.output and "most important groups" in r.output
    assert (out / "bands.png").stat().st_size > 10_000
    s = xr.open_zarr(out / "band_importance.zarr")
    assert s.rmse.dims == ("picker", "reconstructor", "k") and s.rmse.shape == (4, 2, 2)
    assert np.isfinite(s.rmse.values).all() and np.isfinite(s.group_absent_rmse.values).all()
    assert s.attrs["provenance"]["stage"] == "eval bands"
    assert s.attrs["provenance"]["config"] == {"groups": 4, "k": 2, "samples": "val"}

    # group 1 absent, recomputed by another path: predict masks with no patch hidden
    wl = s.wavelength.values
    lo, hi = s.group_lo_nm.values[1], s.group_hi_nm.values[1]
    names = [n for n, w in zip(band_names(wl), wl, strict=True) if lo <= w < hi]
    rec_path = tmp_path / "rec.zarr"
    r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data",
                            str(sample_appl_zarr), "--mask-ratio", "0.01", "--drop-channels",
                            ",".join(names), "--out", str(rec_path)])
    assert r.exit_code == 0, r.output
    rec = zarr.open_group(str(rec_path), mode="r")
    assert not rec["masked"][:].any()
    data = zarr.open_group(str(sample_appl_zarr), mode="r")
    r0, c0, h, w = rec.attrs["crop"]
    err = [((rec["reconstruction"][i].astype(np.float64)
             - data["cube"][k][:, r0:r0 + h, c0:c0 + w]) ** 2).mean()
           for i, k in enumerate(rec["sample_index"][:])]
    assert s.group_absent_rmse.values[1] == pytest.approx(np.sqrt(np.mean(err)), rel=1e-5)


def test_eval_bands_refuses_what_it_cannot_do(tmp_path, mae_run, sample_appl_zarr):
    base = ["eval", "bands", "--run", str(mae_run), "--data", str(sample_appl_zarr),
            "--out", str(tmp_path / "o")]
    for extra, message in [(["--samples", "all"], "none is left for the spectral library"),
                           (["--groups", "4", "--k", "5"], "--k 5 must be between 1 and"),
                           (["--groups", "1"], "--groups 1 must be at least 2")]:
        r = runner.invoke(app, [*base, *extra])
        assert r.exit_code != 0
        assert message in one_error_line(r.output)
    assert not (tmp_path / "o").exists()
