"""`dchag quickstart`: the README's run command, end to end on sample data."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.runner import app, runner


@pytest.mark.slow(seconds=110)  # the longest test: it starts first
def test_quickstart_runs_the_chain_and_scores_held_out_times(tmp_path):
    out = tmp_path / "qs"
    # fewer steps than the default (whose skill the README reports): tendency targets beat
    # persistence at every lead even so; the MAE's steps only need to reach its scores
    r = runner.invoke(app, ["quickstart", "--out", str(out), "--forecast-steps", "300",
                            "--mae-steps", "25"])
    assert r.exit_code == 0, r.output
    assert "8/8" in r.output and "quickstart finished" in r.output
    assert "What the sample shows" in r.output and "cannot show" in r.output
    scores = xr.open_zarr(out / "forecast" / "eval" / "scores.zarr")
    assert "test period" in scores.attrs["period"]
    assert scores.lead.values.tolist() == [6, 24, 72, 168]  # trained and scored, 7 d too
    assert (scores.n_inits.values > 0).all()
    assert "training period" in scores.attrs["climatology"]
    z500 = scores.rmse.sel(channel="z_500", region="global")
    model = z500.sel(forecaster="model").values
    persistence = z500.sel(forecaster="persistence").values
    assert (model < persistence).all(), (model, persistence)  # 6 h to 7 d
    # the test period is in season: a year after the same days of year in training
    # (the record starts 2018-01-01)
    assert "test period 2018-12-2" in scores.attrs["period"], scores.attrs["period"]
    assert "Held-out test period, global RMSE:" in r.output
    assert "lead 6h: the model beats persistence" in r.output
    assert "Held-out cubes: the MAE" in r.output
    masks = xr.open_zarr(out / "mae" / "mask_scores.zarr")
    assert masks.predictor.values.tolist()[0] == "model"
    assert np.isfinite(masks.rmse_by_predictor.values).all()
    assert "protocol differs: the run's data is synthetic, not ERA5" in r.output
    for png in ("forecast/eval/map_z_500.png", "forecast/eval/scores_vs_lead.png",
                "forecast/eval/scorecard.png",
                "forecast/loss.png", "mae/reconstruction.png", "mae/spectra.png", "mae/loss.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    assert (out / "mae" / "mask_scores.zarr").exists()
    r = runner.invoke(app, ["quickstart", "--out", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output
