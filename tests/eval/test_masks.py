"""`dchag predict masks` and `dchag eval masks`."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from tests.runner import app, runner


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory, sample_appl_zarr):
    run = tmp_path_factory.mktemp("mae") / "run"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--steps", "6", "--workers", "0", "--batch-size", "2",
                            "--ckpt-every", "6", "--val-every", "6"])
    assert r.exit_code == 0, r.output
    return run


def _predict_all(tmp_path, run, data, mask_ratio: str):
    """`predict masks` of every cube into tmp_path/rec.zarr (asserted to succeed)."""
    recon = tmp_path / "rec.zarr"
    r = runner.invoke(app, ["predict", "masks", "--run", str(run), "--data", str(data),
                            "--mask-ratio", mask_ratio, "--samples", "all", "--out",
                            str(recon)])
    assert r.exit_code == 0, r.output
    return recon


def test_reconstruction_keeps_visible_pixels_and_is_scored(tmp_path, mae_run, sample_appl_zarr):
    recon = _predict_all(tmp_path, mae_run, sample_appl_zarr, "0.75")
    rec = zarr.open_group(str(recon), mode="r")
    cube = zarr.open_group(str(sample_appl_zarr), mode="r")["cube"]
    assert rec["reconstruction"].shape == (4, 500, 16, 16)
    hidden = rec["masked"][:].astype(bool)
    assert hidden.mean() == pytest.approx(0.75)  # 12 of 16 patches in every cube
    for i in range(4):
        orig = cube[i].astype(np.float32)
        got = rec["reconstruction"][i]
        np.testing.assert_array_equal(got[:, ~hidden[i]], orig[:, ~hidden[i]])
        assert not np.allclose(got[:, hidden[i]], orig[:, hidden[i]])
    r = runner.invoke(app, ["eval", "masks", "--recon", str(recon), "--data",
                            str(sample_appl_zarr), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "SAM" in r.output and "PSNR" in r.output
    scores = xr.open_zarr(tmp_path / "mask_scores.zarr")
    assert scores.psnr.shape == (500,) and np.isfinite(scores.attrs["rmse"])
    assert scores.attrs["rmse"] == pytest.approx(np.sqrt(np.mean(scores.mse.values)))
    assert scores.attrs["convention"].startswith("masked pixels only")
    # PSNR of the first band, recomputed on the masked pixels of every cube
    band0 = []
    for i in range(4):
        a = cube[i, 0].astype(np.float64)
        err = (rec["reconstruction"][i, 0].astype(np.float64) - a)[hidden[i]]
        band0.append(10 * np.log10((a.max() - a.min()) ** 2 / (err**2).mean()))
    assert scores.psnr.values[0] == pytest.approx(np.mean(band0), rel=1e-6)
    assert (tmp_path / "reconstruction.png").read_bytes()[:4] == b"\x89PNG"


def test_wrong_run_or_data_is_refused(tmp_path, mae_run, sample_appl_zarr, sample_era5_zarr):
    r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data",
                            str(sample_era5_zarr)])
    assert r.exit_code == 1 and "not a dchag appl artifact" in r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(mae_run), "--data",
                            str(sample_era5_zarr)])
    assert r.exit_code == 1 and "this is a mae run" in r.output
    r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data",
                            str(sample_appl_zarr), "--mask-ratio", "1.5",
                            "--out", str(tmp_path / "r.zarr")])
    assert r.exit_code == 1 and "--mask-ratio" in r.output
    assert not (tmp_path / "r.zarr").exists()


def test_inpainting_baselines_fill_only_hidden_pixels_from_visible_ones():
    from pipelines.eval.inpaint import BASELINES, inpaint

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:12, 0:10].astype(float)
    # two bands, each a plane in (y, x): piecewise-linear interpolation is exact inside
    # the hull of the visible pixels
    cube = np.stack([1 + 0.1 * yy - 0.05 * xx, 0.3 + 0.02 * xx + 0.01 * yy])
    hidden = np.zeros((12, 10), bool)
    hidden[4:8, 3:7] = True  # an interior patch
    for name in BASELINES:
        out = inpaint(name, cube, hidden)
        np.testing.assert_array_equal(out[:, ~hidden], cube[:, ~hidden])
    np.testing.assert_allclose(inpaint("interpolated", cube, hidden), cube, atol=1e-12)
    hidden[0, 0] = True  # a corner leaves the hull of the visible pixels: nearest pixel
    corner = inpaint("interpolated", cube, hidden)[:, 0, 0]
    assert any(np.allclose(corner, cube[:, a, b]) for a, b in ((0, 1), (1, 0)))
    mean = inpaint("mean_spectrum", cube, hidden)
    np.testing.assert_allclose(mean[:, 5, 5], cube[:, ~hidden].mean(axis=1))
    # nearest visible pixel, against brute force on random data
    noisy = rng.random((3, 12, 10))
    hidden = rng.random((12, 10)) < 0.6
    near = inpaint("nearest_pixel", noisy, hidden)
    seen = np.argwhere(~hidden)
    for y, x in np.argwhere(hidden):
        d = ((seen - (y, x)) ** 2).sum(axis=1)
        ties = seen[d == d.min()]
        assert any(np.array_equal(near[:, y, x], noisy[:, a, b]) for a, b in ties)


def test_eval_masks_scores_the_model_beside_inpainting(tmp_path, mae_run, sample_appl_zarr):
    from pipelines.eval.inpaint import inpaint

    recon = _predict_all(tmp_path, mae_run, sample_appl_zarr, "0.5")
    r = runner.invoke(app, ["eval", "masks", "--recon", str(recon), "--data",
                            str(sample_appl_zarr), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "nearest pixel" in r.output and "best inpainting baseline" in r.output
    s = xr.open_zarr(tmp_path / "mask_scores.zarr")
    assert s.predictor.values.tolist() == ["model", "mean_spectrum", "nearest_pixel",
                                           "interpolated"]
    assert s.rmse_by_predictor.sel(predictor="model").item() == pytest.approx(s.attrs["rmse"])
    # the nearest-pixel baseline, recomputed from the cubes and the recorded masks
    rec = zarr.open_group(str(recon), mode="r")
    cube = zarr.open_group(str(sample_appl_zarr), mode="r")["cube"]
    errs = []
    for i in range(4):
        orig = cube[i].astype(np.float64)
        hidden = rec["masked"][i].astype(bool)
        errs.append(np.mean((inpaint("nearest_pixel", orig, hidden) - orig)[:, hidden] ** 2))
    np.testing.assert_allclose(s.mse_by_predictor.sel(predictor="nearest_pixel").values, errs,
                               rtol=1e-9)
    assert s.attrs["best_baseline"] in ("nearest_pixel", "interpolated")
    assert (tmp_path / "reconstruction.png").read_bytes()[:4] == b"\x89PNG"
