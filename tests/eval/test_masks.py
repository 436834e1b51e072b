"""`dchag predict masks` and `dchag eval masks`."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from tests.runner import app, one_error_line, runner


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
                                           "interpolated", "biharmonic", "low_rank"]
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
    assert s.attrs["best_baseline"] in ("nearest_pixel", "interpolated", "biharmonic",
                                        "low_rank")
    assert (tmp_path / "reconstruction.png").read_bytes()[:4] == b"\x89PNG"


def test_spectral_fill_interpolates_absent_bands_in_wavelength():
    from pipelines.eval.inpaint import spectral_fill

    wl = np.array([400.0, 450.0, 500.0, 600.0, 700.0])
    cube = (2.0 + 0.01 * wl)[:, None, None] * np.ones((5, 3, 4))  # linear in wavelength
    absent = np.array([True, False, True, False, True])
    garbled = np.where(absent[:, None, None], 1e3, cube)
    out = spectral_fill(garbled, wl, absent)
    np.testing.assert_allclose(out[2], cube[2])  # between 450 and 600: exact
    np.testing.assert_array_equal(out[0], cube[1])  # beyond an end: the nearest band
    np.testing.assert_array_equal(out[4], cube[3])
    np.testing.assert_array_equal(out[~absent], cube[~absent])


def test_absent_bands_are_not_input_and_are_scored_apart(tmp_path, mae_run, sample_appl_zarr):
    """`--drop-channels 750-900`: the model never sees those bands (garbage there changes
    nothing), reconstructs every pixel of them, and `eval masks` scores them apart against
    baselines that do not see them either."""
    garbled = tmp_path / "garbled.zarr"
    shutil.copytree(sample_appl_zarr, garbled)
    group = zarr.open_group(str(garbled), mode="r+")
    nir = group["wavelength"][:] >= 750
    cube = group["cube"][:]
    cube[:, nir] = 1e3
    group["cube"][:] = cube

    def predict(data, out, *extra):
        r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data", str(data),
                                "--samples", "all", "--out", str(tmp_path / out), *extra])
        assert r.exit_code == 0, r.output
        said.append(r.output)
        return zarr.open_group(str(tmp_path / out), mode="r")

    said: list[str] = []
    rec = predict(sample_appl_zarr, "rec.zarr", "--drop-channels", "750-900")
    assert f"{nir.sum()} bands absent from the input" in said[0]
    np.testing.assert_array_equal(rec["dropped"][:].astype(bool), nir)
    assert len(rec.attrs["drop_channels"]) == nir.sum() and rec.attrs["drop_channels"][0] \
        .endswith("nm")
    same = predict(garbled, "garbled_rec.zarr", "--drop-channels", "750-900")
    np.testing.assert_array_equal(same["reconstruction"][:][:, ~nir],
                                  rec["reconstruction"][:][:, ~nir])
    np.testing.assert_array_equal(same["reconstruction"][:][:, nir],
                                  rec["reconstruction"][:][:, nir])
    seen = predict(garbled, "seen_rec.zarr")  # with the bands input, the garbage shows
    hidden = seen["masked"][:].astype(bool)
    assert not np.allclose(seen["reconstruction"][:][:, ~nir][:, :, hidden[0]],
                           rec["reconstruction"][:][:, ~nir][:, :, hidden[0]])
    orig = zarr.open_group(str(sample_appl_zarr), mode="r")["cube"][:].astype(np.float32)
    got = rec["reconstruction"][:]
    visible = ~rec["masked"][:].astype(bool)
    for i in range(len(got)):
        np.testing.assert_array_equal(got[i][~nir][:, visible[i]], orig[i][~nir][:, visible[i]])
        assert not np.allclose(got[i][nir][:, visible[i]], orig[i][nir][:, visible[i]])

    r = runner.invoke(app, ["eval", "masks", "--recon", str(tmp_path / "rec.zarr"), "--data",
                            str(sample_appl_zarr), "--out", str(tmp_path / "scores")])
    assert r.exit_code == 0, r.output
    assert "absent from the input" in r.output and "absent bands: the MAE" in r.output
    s = xr.open_zarr(tmp_path / "scores" / "mask_scores.zarr")
    assert s.attrs["drop_channels"] == rec.attrs["drop_channels"]
    model_absent = np.sqrt(np.mean([np.mean((got[i][nir] - orig[i][nir]) ** 2)
                                    for i in range(len(got))]))
    assert s.absent_rmse_by_predictor.sel(predictor="model").item() == pytest.approx(
        model_absent, rel=1e-5)
    assert np.isfinite(s.absent_rmse_by_predictor.values).all()


@pytest.mark.parametrize(("spec", "message"), [
    ("300-350", "no band matches '300-350'"), ("400-900", "no input band"),
    (",", "names no band"), ("a-b", "not a wavelength range")])
def test_drop_channels_that_leave_nothing_or_match_nothing_are_refused(
        tmp_path, mae_run, sample_appl_zarr, spec, message):
    out = tmp_path / "r.zarr"
    r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data",
                            str(sample_appl_zarr), "--drop-channels", spec, "--out", str(out)])
    assert r.exit_code == 1 and message in one_error_line(r.output), r.output
    assert not out.exists()


def test_the_mask_scores_the_command_prints_come_from_the_library(tmp_path, mae_run,
                                                                  sample_appl_zarr):
    from pipelines.eval.mask_summary import summary_rows
    from pipelines.jobs.mask_eval import run_mask_eval

    recon = _predict_all(tmp_path, mae_run, sample_appl_zarr, "0.5")
    scores, out_dir, n = run_mask_eval(recon, sample_appl_zarr, 0, tmp_path / "scored")
    assert n == 4 and (out_dir / "mask_scores.zarr").exists()
    rows = {label: values for label, _, values in summary_rows(scores)}
    rmse, mse = rows["RMSE (reflectance, masked pixels)"], rows["MSE"]
    assert len(rmse) == len(scores.predictors) and np.allclose(mse, np.square(rmse))
    sam = rows["SAM (degrees, masked plant pixels)"]
    assert all(0 <= v <= 90 for v in sam)
