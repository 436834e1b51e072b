"""`dchag quickstart`: the README's run command, end to end on the shipped samples."""

from __future__ import annotations

import xarray as xr

from tests.runner import app, runner


def test_quickstart_runs_the_chain_and_the_forecaster_beats_persistence(tmp_path):
    out = tmp_path / "qs"
    r = runner.invoke(app, ["quickstart", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "7/7" in r.output and "quickstart finished" in r.output
    scores = xr.open_zarr(out / "forecast" / "eval" / "scores.zarr")
    rmse = scores.rmse.sel({"lead": 24})
    model = rmse.sel({"method": "model"}).values
    persistence = rmse.sel({"method": "persistence"}).values
    assert (model < persistence).all(), dict(zip(scores.channel.values, model / persistence,
                                                 strict=True))
    for png in ("forecast/eval/map_z_500.png", "forecast/eval/scores_vs_lead.png",
                "forecast/loss.png", "mae/reconstruction.png", "mae/loss.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    assert (out / "mae" / "mask_scores.zarr").exists()
    r = runner.invoke(app, ["quickstart", "--out", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output
