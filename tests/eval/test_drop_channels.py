"""Any channel subset at inference: a model trained on two tensor-parallel ranks scored
with inputs absent (single channels, a whole channel group), and the robustness scorecard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipelines.eval import forecast
from pipelines.model.config import preset_config
from pipelines.model.forecast import Forecaster
from tests.runner import app, one_error_line, runner

FAST = ["--workers", "0", "--batch-size", "4", "--log-every", "4", "--val-every", "8",
        "--ckpt-every", "8", "--steps", "8", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def tp2_run(tmp_path_factory, sample_era5_zarr) -> Path:
    run = tmp_path_factory.mktemp("tp2") / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--lead", "6h", "--gpus", "2", "--tp", "2", *FAST])
    assert r.exit_code == 0, r.output
    return run


def _eval(run: Path, data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data", str(data),
                               "--period", "2018-01", "--out", str(out), *extra])


def test_residual_base_follows_the_present_channels():
    model = Forecaster(preset_config("tiny", 6, img_size=(8, 8), patch=4, out_channels=2),
                       out_index=[1, 4], residual=True)
    x = torch.randn(2, 6, 8, 8)
    every = torch.arange(6)
    assert torch.equal(model.residual_base(x, every), x[:, [1, 4]])
    ids = torch.tensor([0, 2, 4, 5])  # channel 1 absent: its base is 0 (the mean)
    base = model.residual_base(x[:, ids], ids)
    assert torch.equal(base[:, 1], x[:, 4]) and not base[:, 0].any()


@pytest.mark.slow
def test_a_tp2_model_runs_without_some_inputs(tmp_path, tp2_run, sample_era5_zarr):
    full = _eval(tp2_run, sample_era5_zarr, tmp_path / "full")
    assert full.exit_code == 0, full.output
    part = _eval(tp2_run, sample_era5_zarr, tmp_path / "part", "--drop-channels",
                 "q_500,msl")
    assert part.exit_code == 0, part.output
    a = xr.open_zarr(tmp_path / "full" / "scores.zarr").rmse.sel(forecaster="model").values
    b = xr.open_zarr(tmp_path / "part" / "scores.zarr")
    assert np.isfinite(b.rmse.values).all() and not np.allclose(a, b.rmse.sel(
        forecaster="model").values)
    assert list(b.attrs["dropped_channels"]) == ["q_500", "msl"]
    assert "without q_500, msl" in b.attrs["source"]


@pytest.mark.slow
def test_robustness_scores_every_missing_channel_and_group(tmp_path, tp2_run,
                                                         sample_era5_zarr, monkeypatch):
    made = []

    class Counted(forecast.StoreClimatology):
        def __init__(self, *args, **kwargs):
            made.append(args[1])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(forecast, "StoreClimatology", Counted)
    r = _eval(tp2_run, sample_era5_zarr, tmp_path / "rob", "--robustness")
    assert r.exit_code == 0, r.output
    # one climatology for the full evaluation, one shared by every case after it
    assert len(made) == 2, made
    ds = xr.open_zarr(tmp_path / "rob" / "robustness.zarr")
    # a case scores as the same evaluation made on its own (no state carried between them)
    alone = _eval(tp2_run, sample_era5_zarr, tmp_path / "alone", "--drop-channels", "t_850")
    assert alone.exit_code == 0, alone.output
    np.testing.assert_array_equal(
        ds.rmse.sel(missing="t_850").values,
        xr.open_zarr(tmp_path / "alone" / "scores.zarr").rmse.sel(
            forecaster="model", region="global").values)
    missing = list(ds.missing.values)
    channels = 14  # sample-14
    assert missing[0] == "none" and len(missing) > 1 + channels
    assert all(m.startswith("group ") for m in missing[1 + channels:])
    assert np.isfinite(ds.rmse.values).all()  # whole groups absent included
    np.testing.assert_allclose(ds.rmse_ratio.sel(missing="none").values, 1.0)
    assert "robustness: with " in r.output
    assert (tmp_path / "rob" / "robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_or_all_dropped_channels_are_refused(tmp_path, tp2_run, sample_era5_zarr):
    r = _eval(tp2_run, sample_era5_zarr, tmp_path / "x", "--drop-channels", "sst")
    assert r.exit_code == 1 and "not an input channel" in one_error_line(r.output)
    assert not (tmp_path / "x").exists()
