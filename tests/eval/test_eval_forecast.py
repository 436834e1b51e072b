"""`dchag eval forecast`: outputs in physical units, scores against independent sums,
rollouts, and the errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from tests.runner import app, runner

FAST = ["--workers", "0", "--batch-size", "4", "--log-every", "10", "--val-every", "20",
        "--ckpt-every", "20", "--steps", "20", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory, sample_era5_zarr) -> Path:
    run = tmp_path_factory.mktemp("fc") / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--lead", "6h,1d", *FAST])
    assert r.exit_code == 0, r.output
    return run


def test_eval_writes_predictions_scores_and_figures(tmp_path, forecast_run, sample_era5_zarr):
    out = tmp_path / "ev"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(sample_era5_zarr), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "lead 6h" in r.output and "lead 1d" in r.output and "persist" in r.output
    pred = xr.open_zarr(out / "predictions.zarr")
    assert pred.prediction.dims == ("init_time", "lead", "channel", "lat", "lon")
    assert pred.lead.values.tolist() == [6, 24]
    assert pred.channel.values.tolist() == ["z_500", "t_850", "t2m", "u10", "v10"]
    z500 = pred.prediction.sel(lead=24, channel="z_500").values
    assert 40_000 < np.nanmean(z500) < 60_000  # geopotential in m²/s², not normalised
    scores = xr.open_zarr(out / "scores.zarr")
    assert scores.attrs["convention"] == "weatherbench2"
    assert scores.rmse.dims == ("method", "lead", "channel")
    for png in ("map_z_500.png", "scores_vs_lead.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # Persistence RMSE, recomputed from the artifact with plain sums.
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    t = g["time"][:]
    names = list(g.attrs["channels"])
    c = names.index("t_850")
    w = np.cos(np.deg2rad(g["lat"][:]))
    w = w / w.mean()
    pairs = [(i, int(np.flatnonzero(t == t[i] + 24)[0])) for i in range(len(t))
             if (t == t[i] + 24).any()]
    per_init = [(w[:, None] * (g["data"][i, c].astype(float) - g["data"][j, c]) ** 2).mean()
                for i, j in pairs]
    got = scores.rmse.sel({"method": "persistence", "lead": 24, "channel": "t_850"}).item()
    assert got == pytest.approx(np.sqrt(np.mean(per_init)), rel=1e-9)
    assert int(scores.n_inits.sel(lead=24)) == len(pairs)


def test_the_climax_convention_is_offered_and_named(tmp_path, forecast_run, sample_era5_zarr):
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(sample_era5_zarr), "--lead", "6h", "--convention", "climax",
                            "--out", str(tmp_path / "cx")])
    assert r.exit_code == 0, r.output
    assert "climax convention" in r.output
    assert xr.open_zarr(tmp_path / "cx" / "scores.zarr").attrs["convention"] == "climax"


def test_unreachable_leads_empty_periods_and_other_data_are_refused(
        tmp_path, forecast_run, sample_era5_zarr):
    base = ["eval", "forecast", "--run", str(forecast_run), "--data", str(sample_era5_zarr),
            "--out", str(tmp_path / "x")]
    r = runner.invoke(app, [*base, "--lead", "2d"])
    assert r.exit_code == 1 and "was not trained" in r.output and "--rollout" in r.output
    r = runner.invoke(app, [*base, "--lead", "2d", "--rollout"])
    assert r.exit_code == 1 and "predicts 5 of its 14 input channels" in r.output
    r = runner.invoke(app, [*base, "--period", "1990"])
    assert r.exit_code == 1 and "no time of the data falls in --period 1990" in r.output
    r = runner.invoke(app, [*base, "--period", "20x8"])
    assert r.exit_code == 1 and "--period" in r.output
    assert not (tmp_path / "x" / "predictions.zarr").exists()

    other = tmp_path / "other.zarr"
    from tests.conftest import REPO

    r = runner.invoke(app, ["prep", "era5", str(REPO / "sample_data" / "era5"), "--channels",
                            "z_500,t_850,t2m", "--out", str(other)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(other)])
    assert r.exit_code == 1 and "channels are not all in the data" in r.output
    coarse = tmp_path / "coarse.zarr"
    r = runner.invoke(app, ["prep", "era5", str(REPO / "sample_data" / "era5"), "--preset",
                            "sample-14", "--resolution", "11.25", "--out", str(coarse)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(coarse)])
    assert r.exit_code == 1 and "differs from the run's" in r.output


def test_rollout_reaches_longer_leads_with_a_full_state_model(tmp_path, sample_era5_zarr):
    run = tmp_path / "full"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--channels", "z_500,t_850", "--out-channels",
                            "z_500,t_850", "--lead", "6h", *FAST])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--lead", "6h,1d", "--rollout"])
    assert r.exit_code == 0, r.output
    assert "rolled out in 4 steps of 6h" in r.output
    scores = xr.open_zarr(run / "eval" / "scores.zarr")
    assert scores.attrs["rollout_leads"] == [24]
    assert np.isfinite(scores.rmse.sel({"method": "model"}).values).all()
