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


def test_reconstruction_keeps_visible_pixels_and_is_scored(tmp_path, mae_run, sample_appl_zarr):
    recon = tmp_path / "rec.zarr"
    r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data",
                            str(sample_appl_zarr), "--mask-ratio", "0.75", "--samples", "all",
                            "--out", str(recon)])
    assert r.exit_code == 0, r.output
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
