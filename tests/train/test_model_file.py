"""`dchag export model`: one safetensors file from a sharded run, standing in for the run
folder in evaluation, mask prediction and fine-tuning — with the same numbers."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors import safe_open
from safetensors.torch import save_file

from pipelines.run.records import read_metrics
from tests.runner import app, one_error_line, runner

FAST = ["--workers", "0", "--batch-size", "4", "--log-every", "2", "--val-every", "4",
        "--ckpt-every", "4"]


def _metrics(run: Path) -> list[dict]:
    return read_metrics(run)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, sample_era5_zarr) -> tuple[Path, Path]:
    """A pretraining run on two tensor-parallel ranks, and its exported model file."""
    tmp = tmp_path_factory.mktemp("export")
    run, file = tmp / "pre", tmp / "pre.safetensors"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_era5_zarr), "--out", str(run),
                            "--steps", "4", "--gpus", "2", *FAST])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export", "model", str(run), "--out", str(file)])
    assert r.exit_code == 0, r.output
    assert "checkpoint step" in r.output
    return run, file


def test_the_file_is_the_whole_model_with_its_config(pretrained):
    run, file = pretrained
    with safe_open(str(file), "pt") as f:
        meta = f.metadata()
        q = f.get_tensor("encoder.blocks.0.attn.q.weight")  # head-sharded over tp 2
    assert meta["format"] == "dchag-model/1" and meta["task"] == "mae"
    assert meta["step"] == "4"
    assert json.loads(meta["model"]) == json.loads((run / "model.json").read_text())
    assert json.loads(meta["config"])["gpus"] == 2
    # consolidated: the TP shards of both ranks, at full size
    dim = json.loads(meta["model"])["model"]["embed_dim"]
    assert q.shape == (dim, dim)
    # permissions as the umask says, like every other artifact (safetensors writes 0600)
    mask = os.umask(0)
    os.umask(mask)
    assert file.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.slow
def test_fine_tuning_from_the_file_equals_fine_tuning_from_the_run(tmp_path, pretrained,
                                                                     sample_era5_zarr):
    run, file = pretrained
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h",
            "--steps", "4", "--gpus", "2", *FAST]
    a, b = tmp_path / "from_run", tmp_path / "from_file"
    r = runner.invoke(app, [*args, "--init", str(run), "--out", str(a)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--init", str(file), "--out", str(b)])
    assert r.exit_code == 0, r.output
    for x, y in zip(_metrics(a), _metrics(b), strict=True):
        assert x["step"] == y["step"]
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6)


@pytest.mark.slow
def test_eval_and_predict_read_the_file_like_the_run(tmp_path, sample_era5_zarr,
                                                     sample_appl_zarr):
    fc = tmp_path / "fc"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(fc), "--lead", "6h", "--steps", "4", *FAST])
    assert r.exit_code == 0, r.output
    file = tmp_path / "fc.safetensors"
    assert runner.invoke(app, ["export", "model", str(fc), "--out", str(file)]).exit_code == 0
    scores = []
    # a model file's results go beside it by default, not into a folder at its path
    for source, out in ((fc, tmp_path / "ev_run"), (file, tmp_path / "fc_eval")):
        where = ["--out", str(out)] if source.is_dir() else []
        r = runner.invoke(app, ["eval", "forecast", "--run", str(source), "--data",
                                str(sample_era5_zarr), "--period", "2018-01", *where])
        assert r.exit_code == 0, r.output
        scores.append(xr.open_zarr(out / "scores.zarr").rmse.values)
    np.testing.assert_array_equal(scores[0], scores[1])

    mae = tmp_path / "mae"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(mae),
                            "--steps", "2", "--patch", "4", *FAST])
    assert r.exit_code == 0, r.output
    mae_file = tmp_path / "mae.safetensors"
    assert runner.invoke(app, ["export", "model", str(mae), "--out",
                               str(mae_file)]).exit_code == 0
    recon = []
    for source, name in ((mae, "a.zarr"), (mae_file, "b.zarr")):
        r = runner.invoke(app, ["predict", "masks", "--run", str(source), "--data",
                                str(sample_appl_zarr), "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        recon.append(xr.open_zarr(tmp_path / name))
    name = next(iter(recon[0].data_vars))
    np.testing.assert_array_equal(recon[0][name].values, recon[1][name].values)
    # a pretraining file is not a forecaster
    r = runner.invoke(app, ["eval", "forecast", "--run", str(mae_file), "--data",
                            str(sample_era5_zarr), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "this is a mae run" in one_error_line(r.output)


def test_files_that_are_not_ours_or_do_not_fit_are_refused(tmp_path, pretrained,
                                                           sample_era5_zarr):
    run, file = pretrained
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--init",
                            str(foreign), "--out", str(tmp_path / "f"), "--lead", "6h",
                            "--steps", "2", *FAST])
    assert r.exit_code == 1 and "without dchag's model metadata" in one_error_line(r.output)
    assert not (tmp_path / "f").exists()

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    r = runner.invoke(app, ["eval", "forecast", "--run", str(broken), "--data",
                            str(sample_era5_zarr), "--out", str(tmp_path / "b")])
    assert r.exit_code == 1 and "not a readable safetensors file" in one_error_line(r.output)

    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--init",
                            str(file), "--variant", "C", "--out", str(tmp_path / "c"),
                            "--lead", "6h", "--steps", "2", *FAST])
    assert r.exit_code == 1 and "pretrained encoder differs" in one_error_line(r.output)

    # --overwrite replaces our own file only; never someone else's
    r = runner.invoke(app, ["export", "model", str(run), "--out", str(foreign),
                            "--overwrite"])
    assert r.exit_code == 1 and "not something dchag wrote" in one_error_line(r.output)
    r = runner.invoke(app, ["export", "model", str(run), "--out", str(file)])
    assert r.exit_code == 1 and "already exists" in one_error_line(r.output)
    before = _contents(file)
    r = runner.invoke(app, ["export", "model", str(run), "--out", str(file), "--overwrite"])
    assert r.exit_code == 0
    after = _contents(file)  # the same checkpoint again: the same tensors and metadata
    assert after[0] == before[0] and after[1].keys() == before[1].keys()
    assert all(torch.equal(after[1][k], before[1][k]) for k in after[1])


def _contents(file: Path) -> tuple[dict, dict]:
    with safe_open(str(file), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def test_a_model_with_nan_weights_is_refused(tmp_path, pretrained, sample_era5_zarr):
    _, file = pretrained
    meta, tensors = _contents(file)
    tensors = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
               for k, v in tensors.items()}
    nan_file = tmp_path / "nan.safetensors"
    save_file(tensors, str(nan_file), metadata=meta)
    r = runner.invoke(app, ["predict", "masks", "--run", str(nan_file), "--data",
                            str(sample_era5_zarr), "--out", str(tmp_path / "rec.zarr")])
    assert r.exit_code == 1 and "hold NaN or inf" in one_error_line(r.output)
    assert not (tmp_path / "rec.zarr").exists()


def test_init_refuses_extra_tensors_and_a_truncated_file_even_in_a_dry_run(
        tmp_path, pretrained, sample_era5_zarr):
    _, file = pretrained
    meta, tensors = _contents(file)
    extra = tmp_path / "extra.safetensors"
    save_file({**tensors, "encoder.smuggled": torch.zeros(3)}, str(extra), metadata=meta)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(file.read_bytes()[:-100])
    for bad, message in ((extra, "1 unexpected"), (truncated, "")):
        r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                                "--init", str(bad), "--out", str(tmp_path / "ft"),
                                "--lead", "6h", "--steps", "2", "--dry-run", *FAST])
        assert r.exit_code == 1, r.output
        assert message in one_error_line(r.output)
        assert not (tmp_path / "ft").exists()
