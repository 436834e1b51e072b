"""Forecasters that can beat persistence: tendency targets scaled per lead, computed
forcings, and rollout training through the model's own predictions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from pipelines.data.forcings import FORCINGS, day_of_year, forcing_fields, with_forcings
from pipelines.data.times import EPOCH
from pipelines.model.config import preset_config
from pipelines.model.forecast import Forecaster, scaled_forecast_mse
from pipelines.model.init import init_weights
from pipelines.run.config import TrainConfig
from pipelines.train.data import describe_artifact
from pipelines.train.resolve import tendency_table
from pipelines.train.rollout import rollout_loss
from tests.runner import app, one_error_line, runner
from tests.train.curves import assert_same_curve, whole_and_resumed

FAST = ["--workers", "0", "--batch-size", "2", "--log-every", "2", "--val-every", "4",
        "--ckpt-every", "4"]


def _hours(text: str) -> int:
    return int((np.datetime64(text, "h") - EPOCH) // np.timedelta64(1, "h"))


# -- forcings ------------------------------------------------------------------------
def test_forcings_follow_the_sun_and_the_calendar():
    lat = np.array([-60.0, 0.0, 60.0])
    lon = np.array([0.0, 90.0, 180.0, 270.0])
    t0 = _hours("2018-03-20T06")  # near the equinox; valid 6 h later: noon UTC
    f = forcing_fields(np.array([t0]), np.array([6]), lat, lon)[0]
    assert f.shape == (len(FORCINGS), 3, 4)
    at = {name: f[i] for i, name in enumerate(FORCINGS)}
    # noon UTC: local noon at 0°E (cos = −1 at 12 h), midnight at 180°E
    assert at["cos_local_time"][1, 0] == pytest.approx(-1.0, abs=1e-6)
    assert at["cos_local_time"][1, 2] == pytest.approx(1.0, abs=1e-6)
    # the sun overhead at the equator at local noon, below the horizon at midnight
    assert at["toa_insolation"][1, 0] == pytest.approx(1.0, abs=0.02)
    assert at["toa_insolation"][:, 2] == pytest.approx(0.0, abs=1e-9)
    # 60°S at noon, two days before the equinox (δ ≈ −1.1°): cos 60° plus a little
    assert at["toa_insolation"][0, 0] == pytest.approx(np.cos(np.deg2rad(60)), abs=0.03)
    # at the input time (06 UTC) it is sunrise at 0°E and noon at 90°E
    assert at["toa_insolation_at_input"][1, 1] == pytest.approx(1.0, abs=0.02)
    assert at["cos_local_time_at_input"][1, 0] == pytest.approx(0.0, abs=1e-6)
    doy = day_of_year(np.array([t0 + 6]))[0]
    assert doy == pytest.approx(78.5)
    assert at["cos_day_of_year"] == pytest.approx(np.cos(2 * np.pi * doy / 365.25))
    state = torch.zeros(1, 2, 3, 4)
    both = with_forcings(state, torch.tensor([t0]), torch.tensor([6.0]), lat, lon)
    assert both.shape == (1, 2 + len(FORCINGS), 3, 4)
    assert torch.equal(both[:, 2:], torch.from_numpy(f[None]))


# -- tendency scale ------------------------------------------------------------------
def test_tendency_std_is_the_spread_of_training_period_changes(sample_era5_zarr):
    cfg = TrainConfig(task="forecast", data=str(sample_era5_zarr), leads=[6, 24])
    art = describe_artifact(Path(sample_era5_zarr), cfg)
    art = replace(art, tendency_std=tendency_table(art, cfg))
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    times = g["time"][:]
    train = art.periods.contains("train", times)
    for lead in (6, 24):
        pairs = [(i, j) for i in np.flatnonzero(train) for j in np.flatnonzero(train)
                 if times[j] - times[i] == lead]
        store = [art.channel_index[k] for k in art.out_index]
        d = np.stack([g["data"][j][store].astype(np.float64) - g["data"][i][store]
                      for i, j in pairs])
        assert art.tendency_std[lead] == pytest.approx(d.std(axis=(0, 2, 3)), rel=1e-9)
    # the 6-h change is far smaller than the day's, and than the state's spread
    assert (np.array(art.tendency_std[6]) < np.array(art.tendency_std[24])).sum() >= 3
    assert (np.array(art.lead_scale()[6]) < 1).all()


def _forecaster(channels: int, out: list[int], scale: dict | None, seed: int = 0
                ) -> Forecaster:
    cfg = preset_config("tiny", channels, img_size=(8, 16), out_channels=len(out))
    model = Forecaster(cfg, out_index=out, residual=True, lead_scale=scale)
    init_weights(model, seed)
    return model


def test_a_tendency_forecaster_adds_its_output_times_the_lead_scale():
    scale = {6: [0.1, 0.5], 24: [2.0, 3.0]}
    plain, scaled = _forecaster(3, [0, 2], None), _forecaster(3, [0, 2], scale)
    x = torch.randn(2, 3, 8, 16)
    lead = torch.tensor([6.0, 24.0])
    with torch.no_grad():
        change = plain(x, lead) - x[:, [0, 2]]
        scaled_change = scaled(x, lead) - x[:, [0, 2]]
    s = torch.tensor([[0.1, 0.5], [2.0, 3.0]])[:, :, None, None]
    torch.testing.assert_close(scaled_change, change * s, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no tendency scale for lead"):
        scaled(x, torch.tensor([6.0, 12.0]))


# -- rollout -------------------------------------------------------------------------
def test_one_rollout_step_is_the_direct_step_and_two_unroll_the_chain():
    torch.manual_seed(0)
    scale = {6: [0.3, 0.7, 1.1]}
    model = _forecaster(3 + len(FORCINGS), [0, 1, 2], scale)
    lat, lon = np.linspace(-80, 80, 8), np.arange(16) * 22.5
    x = torch.randn(2, 3, 8, 16)
    y = torch.randn(2, 2, 3, 8, 16)
    lead, t0 = torch.tensor([6.0, 6.0]), torch.tensor([_hours("2018-01-01T00"),
                                                      _hours("2018-01-01T18")])
    lat_t = torch.from_numpy(lat).float()
    s = model.step_scale(lead)

    one = rollout_loss(model, x, y[:, :1], lead, t0, lat_t, (lat, lon))
    direct = scaled_forecast_mse(model(with_forcings(x, t0, lead, lat, lon), lead), y[:, 0],
                                 s, lat_t)
    assert torch.equal(one, direct)

    two = rollout_loss(model, x, y, lead, t0, lat_t, (lat, lon))
    first = model(with_forcings(x, t0, lead, lat, lon), lead)
    second = model(with_forcings(first, t0 + 6, lead, lat, lon), lead)
    by_hand = (scaled_forecast_mse(first, y[:, 0], s, lat_t)
               + scaled_forecast_mse(second, y[:, 1], s, lat_t)) / 2
    torch.testing.assert_close(two, by_hand)
    # the gradient reaches the first step through the second
    model.zero_grad()
    scaled_forecast_mse(second, y[:, 1], s, lat_t).backward()
    grad_through = model.head[0].weight.grad.clone()
    assert grad_through.abs().sum() > 0


@pytest.mark.slow
def test_rollout_training_resumes_on_the_same_loss_curve(tmp_path, sample_era5_zarr):
    base = tmp_path / "base"
    data = str(sample_era5_zarr)
    full_state = ["--channels", "z_500,t_850,t2m", "--out-channels", "all", "--lead", "6h"]
    r = runner.invoke(app, ["train", "forecast", "--data", data, "--out", str(base),
                            *full_state, "--steps", "4", *FAST])
    assert r.exit_code == 0, r.output
    info = json.loads((base / "model.json").read_text())
    assert info["target"] == "tendency" and info["forcings"] == list(FORCINGS)
    assert set(info["tendency_std"]) == {"6"} and len(info["tendency_std"]["6"]) == 3

    args = ["train", "forecast", "--data", data, "--init", str(base), *full_state,
            "--rollout-steps", "3", "--steps", "8", *FAST]
    whole, split = whole_and_resumed(args, tmp_path, stop_at=4)
    assert_same_curve(whole, split, [2, 4, 6, 8])
    # the held-out periods are separated by the whole chain (3 × 6 h)
    assert json.loads((whole / "model.json").read_text())["periods"]["gap_hours"] == 18
    # the fine-tuned forecaster started from all of the base one, head included
    def head(run: Path, step: int) -> torch.Tensor:
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        flat = tmp_path / f"{run.name}-{step}.pt"
        dcp_to_torch_save(str(run / "checkpoints" / f"step_{step:08d}"), str(flat))
        return torch.load(flat, weights_only=True)["model"]["head.2.weight"]

    assert (head(split, 4) - head(base, 4)).abs().max() < 4 * 2 * 1.5e-4 + 1e-6
    r = runner.invoke(app, ["eval", "forecast", "--run", str(whole), "--data", data,
                            "--lead", "6h,12h", "--rollout", "--period", "2018-01"])
    assert r.exit_code == 0, r.output
    assert "rolled out in 2 steps of 6h" in r.output


def test_rollout_training_needs_a_model_of_the_whole_state(tmp_path, sample_era5_zarr):
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(tmp_path / "r"), "--lead", "6h", "--rollout-steps", "2",
                            "--steps", "2", *FAST])
    assert r.exit_code == 1
    line = one_error_line(r.output)
    assert "--rollout-steps 2" in line and "--out-channels all" in line
    assert not (tmp_path / "r").exists()


def test_a_run_from_before_tendency_targets_still_scores_as_a_state_model(
        tmp_path, sample_era5_zarr):
    run = tmp_path / "old"
    data = str(sample_era5_zarr)
    r = runner.invoke(app, ["train", "forecast", "--data", data, "--out", str(run),
                            "--lead", "6h", "--target", "state", "--no-forcings",
                            "--steps", "4", *FAST])
    assert r.exit_code == 0, r.output
    ev = ["eval", "forecast", "--run", str(run), "--data", data, "--period", "2018-01"]
    assert runner.invoke(app, [*ev, "--out", str(tmp_path / "new")]).exit_code == 0
    for name, keys in (("config.json", ("target", "forcings", "rollout_steps")),
                       ("model.json", ("target", "tendency_std", "forcings"))):
        saved = json.loads((run / name).read_text())
        assert saved.get("target") == "state"
        for key in keys:
            saved.pop(key)
        (run / name).write_text(json.dumps(saved))
    r = runner.invoke(app, [*ev, "--out", str(tmp_path / "legacy")])
    assert r.exit_code == 0, r.output
    a, b = (xr.open_zarr(tmp_path / d / "scores.zarr").rmse.values for d in ("new", "legacy"))
    np.testing.assert_array_equal(a, b)
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run), "--steps", "6"])
    assert r.exit_code == 0, r.output
