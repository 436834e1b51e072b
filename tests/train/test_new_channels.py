"""`train forecast --init RUN --new-channels VAR`: a trained forecaster extended by a
channel it never saw, training only that channel's group and output layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipelines.run.load import load_run
from tests.runner import app, one_error_line, runner

FAST = ["--workers", "0", "--batch-size", "4", "--log-every", "4", "--val-every", "8",
        "--ckpt-every", "8", "--steps", "8", "--lr", "1e-3", "--lead", "6h,1d"]
WITHOUT_T2M = "z_500,z_850,t_500,t_850,u_500,u_850,v_500,v_850,q_500,q_850,u10,v10,msl"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, sample_era5_zarr) -> Path:
    run = tmp_path_factory.mktemp("base") / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--channels", WITHOUT_T2M, *FAST])
    assert r.exit_code == 0, r.output
    return run


def _extend(base: Path, data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "forecast", "--data", str(data), "--out", str(out),
                               "--init-from", str(base), "--new-channels", "t2m", *FAST,
                               *extra])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_run(run, "forecast", torch.device("cpu")).model.state_dict()


@pytest.mark.slow(seconds=20)
def test_only_the_new_channels_parameters_train_and_it_is_forecast(tmp_path, base_run,
                                                                   sample_era5_zarr):
    ext = tmp_path / "ext"
    r = _extend(base_run, sample_era5_zarr, ext)
    assert r.exit_code == 0, r.output
    assert "--tune new-channels: " in r.output and " parameters train (" in r.output
    before, after = _weights(base_run), _weights(ext)
    assert {k for k in before if not torch.equal(before[k], after[k])} == set()
    new = set(after) - set(before)
    assert new and all(k.startswith(("encoder.tokenizers.8.", "encoder.aggregator.groups.8.",
                                     "new_head.")) for k in new)
    base_info = json.loads((base_run / "model.json").read_text())
    info = json.loads((ext / "model.json").read_text())
    assert info["channel_names"] == base_info["channel_names"] + ["t2m"]
    assert info["out_channels"] == base_info["out_channels"] + ["t2m"]
    assert info["mean"][:-1] == base_info["mean"] and info["std"][:-1] == base_info["std"]
    assert info["model"]["new_outputs"] == 1
    for lead, scale in base_info["tendency_std"].items():  # the pretrained head's units
        assert info["tendency_std"][lead][:-1] == scale
    out = tmp_path / "ev"
    e = runner.invoke(app, ["eval", "forecast", "--run", str(ext), "--data",
                            str(sample_era5_zarr), "--period", "2018-01", "--out", str(out)])
    assert e.exit_code == 0, e.output
    rmse = xr.open_zarr(out / "scores.zarr").rmse.sel(forecaster="model", channel="t2m")
    assert np.isfinite(rmse.values).all()


def test_a_full_fine_tune_trains_the_backbone_too(tmp_path, base_run, sample_era5_zarr):
    ext = tmp_path / "all"
    r = _extend(base_run, sample_era5_zarr, ext, "--tune", "all")
    assert r.exit_code == 0, r.output
    before, after = _weights(base_run), _weights(ext)
    assert not torch.equal(before["encoder.blocks.0.attn.q.weight"],
                           after["encoder.blocks.0.attn.q.weight"])


def test_what_cannot_be_extended_is_refused_in_one_line(tmp_path, base_run, sample_era5_zarr,
                                                        mae_run):
    cases = [
        (["--new-channels", "t2m"], "extends a trained forecaster"),
        (["--init", str(base_run), "--new-channels", "msl"], "already an input of the run"),
        (["--init", str(base_run), "--new-channels", "t2m", "--channels", "t2m"],
         "leave out --channels"),
        (["--init", str(base_run), "--new-channels", "t2m", "--preset", "small"],
         "differs from the extended run's"),
        (["--init", str(mae_run), "--new-channels", "t2m"], "not a pretraining run"),
        (["--init", str(base_run), "--new-channels", "t2m", "--gpus", "2", "--tp", "2"],
         "cannot form groups that divide over --tp 2"),
        (["--init", str(base_run), "--tune", "new-channels"], "--tune new-channels"),
    ]
    for i, (extra, said) in enumerate(cases):
        out = tmp_path / f"r{i}"
        r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                                str(out), *FAST, *extra])
        assert r.exit_code != 0, extra
        assert said in one_error_line(r.output), (extra, r.output)
        assert not out.exists()


def test_an_added_channel_starts_as_persistence():
    """The added output layer starts at zero: before any step, the new channel's forecast
    is its input state (the baseline it must beat), while known outputs stay the model's."""
    from pipelines.model.config import preset_config
    from pipelines.model.forecast import Forecaster
    from pipelines.train.build import Layout, build_sharded

    cfg = preset_config("tiny", 5, img_size=(16, 32), patch=4, out_channels=3,
                        new_outputs=1, group_sizes=(2, 2, 1), new_head_inputs=(3, 4))
    layout = Layout(None, None, torch.device("cpu"), compute_dtype=torch.float32, fsdp=False)
    model = build_sharded(lambda: Forecaster(cfg, out_index=[0, 1, 4]), layout, seed=3)
    x = torch.randn(2, 5, 16, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x, torch.full((2,), 6.0))
    assert torch.equal(y[:, 2], x[:, 4])
    assert not torch.allclose(y[:, 0], x[:, 0])
