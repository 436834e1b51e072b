"""`--channel-dropout`: channels and whole groups missing at random per step — the same
draw on every rank, so tensor-parallel ranks agree and a resumed run continues exactly."""

from __future__ import annotations

import torch

from pipelines.train.channel_dropout import kept_channels
from tests.runner import app, runner
from tests.train.curves import assert_same_curve, whole_and_resumed

FAST = ["--workers", "0", "--batch-size", "2", "--log-every", "2", "--val-every", "4",
        "--ckpt-every", "4"]


def test_the_draw_depends_on_seed_and_step_only():
    bounds = [0, 4, 8, 12, 16]  # 4 groups over 14 data channels and 2 forcings
    draws = [kept_channels(s, 0, 0.3, 14, 16, bounds) for s in range(200)]
    again = [kept_channels(s, 0, 0.3, 14, 16, bounds) for s in range(200)]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(draws, again,
                                                                         strict=True))
    kept = [d for d in draws if d is not None]
    assert len({tuple(d.tolist()) for d in kept}) > 50  # steps differ
    for d in kept:
        assert {14, 15} <= set(d.tolist())  # forcings are never dropped
        assert any(i < 14 for i in d.tolist())  # at least one data channel stays
    # whole groups go missing sometimes: all of channels 4..7 absent together
    assert any(not set(range(4, 8)) & set(d.tolist()) for d in kept)
    assert kept_channels(3, 0, 0.0, 14, 16, bounds) is None
    other_seed = [kept_channels(s, 1, 0.3, 14, 16, bounds) for s in range(200)]
    assert any((a is None) != (b is None) or (a is not None and not torch.equal(a, b))
               for a, b in zip(draws, other_seed, strict=True))


def test_resume_with_channel_dropout_continues_the_same_curve(tmp_path, sample_era5_zarr):
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h",
            "--steps", "8", "--channel-dropout", "0.3", *FAST]
    whole, split = whole_and_resumed(args, tmp_path, stop_at=4)
    assert_same_curve(whole, split, [2, 4, 6, 8])


def test_channel_dropout_trains_on_two_tensor_parallel_ranks(tmp_path, sample_era5_zarr):
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(tmp_path / "run"), "--lead", "6h", "--steps", "4",
                            "--gpus", "2", "--tp", "2", "--channel-dropout", "0.5", *FAST])
    assert r.exit_code == 0, r.output
    assert "final train loss" in r.output


def test_mae_pretraining_with_channel_dropout_trains_and_resumes(tmp_path, sample_appl_zarr):
    """The MAE reconstructs the dropped bands whole; a resumed run draws the same bands."""
    args = ["pretrain", "--data", str(sample_appl_zarr), "--steps", "8", "--mask-ratio",
            "0.5", "--channel-dropout", "0.3", *FAST]
    whole, split = whole_and_resumed(args, tmp_path, stop_at=4)
    assert_same_curve(whole, split, [2, 4, 6, 8])


def test_a_dropout_of_one_is_refused(tmp_path, sample_era5_zarr):
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(tmp_path / "run"), "--channel-dropout", "1"])
    assert r.exit_code != 0 and "--channel-dropout 1.0 must be in [0, 1)" in r.output


def test_an_output_without_its_input_is_scored_in_state_units():
    from pipelines.model.config import preset_config
    from pipelines.model.forecast import Forecaster, scaled_forecast_mse
    from pipelines.train.rollout import rollout_loss

    torch.manual_seed(0)
    model = Forecaster(preset_config("tiny", 4, img_size=(8, 8), patch=4, out_channels=2),
                       out_index=[0, 2], residual=True, lead_scale={6: [0.1, 0.2]})
    x, y = torch.randn(2, 4, 8, 8), torch.randn(2, 1, 2, 8, 8)
    lead, time, lat = torch.full((2,), 6.0), torch.zeros(2), torch.linspace(-60, 60, 8)
    every = torch.arange(4)
    assert torch.allclose(rollout_loss(model, x, y, lead, time, lat, None),
                          rollout_loss(model, x, y, lead, time, lat, None, every))
    keep = torch.tensor([1, 2, 3])  # output 0's own input is absent
    got = rollout_loss(model, x, y, lead, time, lat, None, keep)
    pred = model(x[:, keep], lead, keep)
    scale = torch.tensor([1.0, 0.2]).view(1, 2, 1, 1).expand(2, 2, 1, 1)
    assert torch.allclose(got, scaled_forecast_mse(pred, y[:, 0], scale, lat))
