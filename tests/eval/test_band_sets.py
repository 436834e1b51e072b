"""A model known by its bands' centres and widths, not their positions: it reconstructs
cubes of another instrument (fewer, shifted, broader bands) through their spectral
response, and a store holding its bands in another order scores exactly the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from pipelines.data.sensor_bands import band_widths, response
from pipelines.run.load import load_run
from tests.conftest import REPO
from tests.runner import app, one_error_line, runner
from tests.store_edit import permuted_copy


def _predict_and_score(run: Path, data: Path, out: Path, *extra: str,
                       samples: str = "all") -> tuple[xr.Dataset, str]:
    out.mkdir(exist_ok=True)
    r = runner.invoke(app, ["predict", "masks", "--run", str(run), "--data", str(data),
                            "--samples", samples, "--out", str(out / "rec.zarr"), *extra])
    assert r.exit_code == 0, r.output
    e = runner.invoke(app, ["eval", "masks", "--recon", str(out / "rec.zarr"), "--data",
                            str(data), "--out", str(out / "ev")])
    assert e.exit_code == 0, e.output
    return xr.open_zarr(out / "ev" / "mask_scores.zarr"), r.output


@pytest.fixture(scope="module")
def other_sensor(tmp_path_factory) -> Path:
    """The sample plants as a 41-band, 10 nm sensor over 450–850 nm."""
    out = tmp_path_factory.mktemp("sensor") / "b41.zarr"
    r = runner.invoke(app, ["prep", "appl", str(REPO / "sample_data" / "appl" / "manifest.csv"),
                            "--size", "16", "--bands", "41", "--range", "450:850",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_a_model_reconstructs_another_sensors_bands(tmp_path, mae_run, other_sensor,
                                                    sample_appl_zarr):
    scores, said = _predict_and_score(mae_run, other_sensor, tmp_path)
    assert "read through their spectral response" in said
    assert "beyond the data's range" in said  # 400–450 and 850–900 nm: estimated
    rec = zarr.open_group(str(tmp_path / "rec.zarr"), mode="r")
    assert np.allclose(rec["wavelength"][:], np.linspace(450, 850, 41))
    assert rec.attrs["band_view"] == "spectral response"
    assert rec.attrs["band_lift"] == "spectral prior"
    data = zarr.open_group(str(other_sensor), mode="r")["cube"]
    recon = rec["reconstruction"][:]
    visible = rec["masked"][:] == 0
    truth = data[:, :, :, :]
    assert np.allclose(np.moveaxis(recon, 1, -1)[visible], np.moveaxis(truth, 1, -1)[visible])
    rmse = scores.rmse_by_predictor.to_series()
    assert np.isfinite(rmse.values).all() and set(rmse.index) >= {"model", "biharmonic"}
    # The same masks on the run's own 500 bands, projected onto the sensor's: what the
    # model predicts does not hinge on which instrument measured the visible pixels.
    _predict_and_score(mae_run, sample_appl_zarr, tmp_path / "native")
    own = zarr.open_group(str(tmp_path / "native" / "rec.zarr"), mode="r")
    fine = np.moveaxis(own["reconstruction"][:], 1, -1)
    s = response(own["wavelength"][:], band_widths(own["wavelength"][:]),
                 rec["wavelength"][:], np.full(41, 10.0))
    hidden = ~visible
    gap = np.sqrt(np.mean((np.moveaxis(recon, 1, -1)[hidden] - (fine @ s.T)[hidden]) ** 2))
    assert gap < 0.25 * rmse["model"]


def test_bands_of_a_run_cannot_be_dropped_from_another_band_set(tmp_path, mae_run,
                                                                other_sensor):
    r = runner.invoke(app, ["predict", "masks", "--run", str(mae_run), "--data",
                            str(other_sensor), "--drop-channels", "750-900",
                            "--out", str(tmp_path / "r.zarr")])
    assert r.exit_code != 0
    assert "another band set" in one_error_line(r.output)
    assert not (tmp_path / "r.zarr").exists()


def test_shuffling_the_stores_bands_changes_no_score(tmp_path, mae_run, sample_appl_zarr):
    perm = np.random.default_rng(3).permutation(500)
    shuffled = permuted_copy(sample_appl_zarr, tmp_path / "shuffled.zarr", "band", perm)
    a, _ = _predict_and_score(mae_run, sample_appl_zarr, tmp_path / "a")
    b, said = _predict_and_score(mae_run, shuffled, tmp_path / "b")
    assert "another order: matched by name" in said
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name


FAST = ["--steps", "4", "--workers", "0", "--batch-size", "2", "--ckpt-every", "4",
        "--val-every", "4"]


def _weights(run: Path) -> dict:
    return load_run(run, "mae", torch.device("cpu")).model.state_dict()


@pytest.mark.slow(seconds=20)
def test_tuning_the_channels_on_another_sensor_leaves_the_backbone_as_pretrained(
        tmp_path, mae_run, other_sensor):
    tuned = tmp_path / "tuned"
    r = runner.invoke(app, ["pretrain", "--data", str(other_sensor), "--init", str(mae_run),
                            "--tune", "channels", "--out", str(tuned), "--gpus", "2", *FAST])
    assert r.exit_code == 0, r.output
    assert "read through their spectral response" in r.output
    info = json.loads((tuned / "model.json").read_text())
    pretrained = json.loads((mae_run / "model.json").read_text())
    for key in ("channel_names", "mean", "std", "spectral_basis", "channel_measures"):
        assert info[key] == pretrained[key], key
    assert info["sensor"]["wavelength_nm"] == list(np.linspace(450, 850, 41))
    before, after = _weights(mae_run), _weights(tuned)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("encoder.tokenizers.", "decoder_pred."))
                           for k in changed)
    assert any(k.startswith("encoder.tokenizers.") for k in changed)
    assert "decoder_pred.weight" in changed  # on both tensor-parallel ranks' groups
    assert {k.split(".")[2] for k in changed if k.startswith("encoder.tokenizers.")} == \
        {str(g) for g in range(8)}
    # the run's own held-out plants, found in the sensor's store
    scores, said = _predict_and_score(tuned, other_sensor, tmp_path / "scored", samples="val")
    assert "read through their spectral response" in said
    assert np.isfinite(scores.rmse_by_predictor.values).all()


def test_tuning_needs_a_pretrained_run_and_keeps_its_bands(tmp_path, mae_run, other_sensor):
    r = runner.invoke(app, ["pretrain", "--data", str(other_sensor), "--tune", "channels",
                            "--out", str(tmp_path / "a"), *FAST])
    assert r.exit_code != 0 and "--init RUN" in one_error_line(r.output)
    r = runner.invoke(app, ["pretrain", "--data", str(other_sensor), "--init", str(mae_run),
                            "--channels", "450-600", "--out", str(tmp_path / "b"), *FAST])
    assert r.exit_code != 0
    assert "keeps the pretrained model's bands" in one_error_line(r.output)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_runs_and_stores_from_before_recorded_widths_still_work(tmp_path, mae_run,
                                                                 other_sensor):
    """A run without `channel_measures` is known by its band names; a store without
    `fwhm` by its band spacing (the width prep resampled with)."""
    import shutil

    run = tmp_path / "old_run"
    shutil.copytree(mae_run, run)
    info = json.loads((run / "model.json").read_text())
    del info["channel_measures"]
    (run / "model.json").write_text(json.dumps(info))
    store = tmp_path / "old.zarr"
    shutil.copytree(other_sensor, store)
    del zarr.open_group(str(store), mode="r+")["fwhm"]
    old, _ = _predict_and_score(run, store, tmp_path / "old")
    new, _ = _predict_and_score(mae_run, other_sensor, tmp_path / "new")
    assert np.allclose(old.rmse_by_predictor.values, new.rmse_by_predictor.values, rtol=1e-4)
