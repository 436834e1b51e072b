"""`pretrain --init RUN --new-channels 400-499,801-900`: a pretrained MAE extended by bands
outside its range, training only those bands' groups and decoder rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipelines.run.load import load_run
from tests.runner import app, one_error_line, runner

FAST = ["--workers", "0", "--batch-size", "2", "--steps", "6", "--val-every", "6",
        "--ckpt-every", "6", "--log-every", "3"]
NEW = "400-499,801-900"


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory, sample_appl_zarr) -> Path:
    """An MAE pretrained on 500–800 nm of the sample cubes only."""
    run = tmp_path_factory.mktemp("inner") / "run"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--channels", "500-800", *FAST])
    assert r.exit_code == 0, r.output
    return run


def _extend(data: Path, init: Path, out: Path, *extra: str):
    return runner.invoke(app, ["pretrain", "--data", str(data), "--out", str(out), "--init",
                               str(init), "--new-channels", NEW, *FAST, *extra])


@pytest.fixture(scope="module")
def ext_run(tmp_path_factory, inner_run, sample_appl_zarr) -> Path:
    ext = tmp_path_factory.mktemp("ext") / "run"
    r = _extend(sample_appl_zarr, inner_run, ext)
    assert r.exit_code == 0, r.output
    assert "--tune new-channels: " in r.output
    return ext


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_run(run, "mae", torch.device("cpu")).model.state_dict()


@pytest.mark.slow(seconds=25)
def test_only_the_new_bands_train_and_every_band_is_reconstructed(tmp_path, inner_run, ext_run,
                                                                   sample_appl_zarr):
    ext = ext_run
    before, after = _weights(inner_run), _weights(ext)
    assert {k for k in before if not torch.equal(before[k], after[k])} == set()
    new = set(after) - set(before)
    assert "new_pred.weight" in new
    assert all(k.startswith(("encoder.tokenizers.", "encoder.aggregator.groups.", "new_pred."))
               for k in new)
    base_info = json.loads((inner_run / "model.json").read_text())
    info = json.loads((ext / "model.json").read_text())
    nm = info["channel_measures"]["wavelength_nm"]
    assert nm == sorted(nm) and nm[0] < 500 < 800 < nm[-1]  # wavelength order, both sides
    assert set(base_info["channel_names"]) < set(info["channel_names"])
    for name, mean in zip(base_info["channel_names"], base_info["mean"], strict=True):
        assert info["mean"][info["channel_names"].index(name)] == mean
    recon = tmp_path / "recon.zarr"
    p = runner.invoke(app, ["predict", "masks", "--run", str(ext), "--data",
                            str(sample_appl_zarr), "--samples", "all", "--out", str(recon)])
    assert p.exit_code == 0, p.output
    e = runner.invoke(app, ["eval", "masks", "--recon", str(recon), "--data",
                            str(sample_appl_zarr), "--out", str(tmp_path / "ev")])
    assert e.exit_code == 0, e.output
    scores = xr.open_zarr(tmp_path / "ev" / "mask_scores.zarr")
    assert np.isfinite(scores.rmse_by_predictor.sel(predictor="model").values).all()


def test_an_added_band_starts_at_the_first_guess(inner_run, sample_appl_zarr, tmp_path):
    """New decoder rows start at zero: before training, a new band's hidden pixels are
    the biharmonic inpainting the decoder corrects."""
    from pipelines.model.config import ModelConfig
    from pipelines.model.mae import MAE
    from pipelines.train.build import Layout, build_sharded

    info = json.loads((inner_run / "model.json").read_text())
    base = ModelConfig.from_dict(info["model"])
    c = base.channels
    ids = tuple([c, *range(c), c + 1])  # one new band on each side
    cfg = base.with_(channels=c + 2, group_sizes=(c, 2), new_outputs=2, input_ids=ids,
                     groups=None)
    layout = Layout(None, None, torch.device("cpu"), compute_dtype=torch.float32, fsdp=False)
    model = build_sharded(lambda: MAE(cfg), layout, seed=1)
    h, w = cfg.img_size
    x = torch.randn(1, c + 2, h, w, generator=torch.Generator().manual_seed(0))
    keep, mask, restore = __import__("pipelines.model.mae", fromlist=["random_masking"]
                                     ).random_masking(1, cfg.num_patches, 0.5, x.device)
    with torch.no_grad():
        pred = model.predict(x, None, keep, mask, restore)
        guess = model.first_guess(x, mask, None)
    for band in (0, c + 1):
        assert torch.equal(pred[:, :, band], guess[:, :, band])
    assert not torch.equal(pred[:, :, 1], guess[:, :, 1])


def test_what_cannot_extend_an_mae_is_refused_in_one_line(tmp_path, inner_run, mae_run,
                                                          sample_appl_zarr):
    narrow = tmp_path / "narrow.zarr"
    manifest = Path(__file__).resolve().parents[2] / "sample_data" / "appl" / "manifest.csv"
    r = runner.invoke(app, ["prep", "appl", str(manifest), "--size", "16", "--bands", "31",
                            "--range", "600:700", "--out", str(narrow)])
    assert r.exit_code == 0, r.output
    cases = [
        (sample_appl_zarr, ["--init", str(inner_run), "--new-channels", "550-650"],
         "already one of the run's"),
        (narrow, ["--init", str(mae_run), "--new-channels", "600-700"], "the store lacks"),
        (sample_appl_zarr, ["--init", str(inner_run), "--new-channels", NEW, "--tune",
                            "channels"], "--tune channels with --new-channels"),
        (sample_appl_zarr, ["--init", str(inner_run), "--new-channels", NEW,
                            "--channel-dropout", "0.1"], "--channel-dropout"),
        (sample_appl_zarr, ["--init", str(inner_run), "--new-channels", NEW, "--fill",
                            "none"], "differs from the extended run's"),
        (sample_appl_zarr, ["--new-channels", NEW], "extends a pretrained MAE"),
    ]
    for i, (data, extra, said) in enumerate(cases):
        out = tmp_path / f"r{i}"
        r = runner.invoke(app, ["pretrain", "--data", str(data), "--out", str(out), *FAST,
                                *extra])
        assert r.exit_code != 0, extra
        assert said in one_error_line(r.output), (extra, r.output)
        assert not out.exists()


@pytest.mark.slow(seconds=25)
def test_under_tensor_parallelism_it_trains_as_on_one_rank(tmp_path, inner_run, ext_run,
                                                           sample_appl_zarr):
    """tp 2: one rank holds only frozen groups, the other the new bands' groups; both run
    the backward through the shared layers (its collectives), and the losses are the
    single process's."""
    out = tmp_path / "tp2"
    r = _extend(sample_appl_zarr, inner_run, out, "--gpus", "2", "--tp", "2")
    assert r.exit_code == 0, r.output
    one, two = (xr.open_zarr(run / "metrics.zarr") for run in (ext_run, out))
    np.testing.assert_allclose(two.loss.values, one.loss.values, rtol=1e-4)
