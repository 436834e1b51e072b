"""`dchag pretrain` / `dchag train forecast` on one rank in this process: outputs, resume,
fine-tuning, and the errors a user can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from pipelines.run import checkpoint as checkpoint_module
from pipelines.run.records import read_metrics
from tests.runner import app, runner
from tests.train.curves import assert_same_curve, whole_and_resumed

FAST = ["--workers", "0", "--batch-size", "2", "--log-every", "2", "--val-every", "4",
        "--ckpt-every", "4"]


def _metrics(run: Path) -> list[dict]:
    return read_metrics(run)


def test_pretrain_on_hyperspectral_cubes_writes_a_complete_run(tmp_path, sample_appl_zarr):
    run = tmp_path / "mae"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--steps", "8", "--patch", "4", *FAST])
    assert r.exit_code == 0, r.output
    assert "final train loss" in r.output and "final validation loss" in r.output
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "checkpoints" / "latest").read_text() == "step_00000008"
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [
        "step_00000004", "step_00000008"]
    ds = xr.open_zarr(run / "metrics.zarr")
    assert ds.step.values.tolist() == [2, 4, 6, 8]
    assert np.isfinite(ds.loss.values).all() and (ds.samples_per_s.values > 0).all()
    assert np.isfinite(ds.val_loss.sel(step=[4, 8]).values).all()
    assert (ds.peak_mem_bytes.values > 0).all()
    assert ds.attrs["provenance"]["stage"] == "train mae"
    assert ds.attrs["provenance"]["config"]["steps"] == 8
    assert ds.attrs["model"]["channels"] == 500
    saved = json.loads((run / "config.json").read_text())
    assert saved["task"] == "mae" and saved["patch"] == 4


def test_resume_continues_the_same_loss_curve(tmp_path, sample_era5_zarr):
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h,1d",
            "--steps", "8", *FAST]
    whole, split = whole_and_resumed(args, tmp_path, stop_at=4)
    assert_same_curve(whole, split, [2, 4, 6, 8])


def test_forecast_fine_tunes_a_pretrained_encoder(tmp_path, sample_era5_zarr):
    pre = tmp_path / "pre"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_era5_zarr), "--out", str(pre),
                            "--steps", "4", *FAST])
    assert r.exit_code == 0, r.output
    ft = tmp_path / "ft"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--init",
                            str(pre), "--out", str(ft), "--lead", "6h", "--steps", "2", *FAST])
    assert r.exit_code == 0, r.output
    # The fine-tuned encoder started from the pretrained one: its block weights moved only
    # by two small optimizer steps, while a fresh encoder is far away.
    def block_weight(run: Path) -> torch.Tensor:
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        flat = tmp_path / f"{run.name}.pt"
        dcp_to_torch_save(str(run / "checkpoints" / "step_00000004" if run == pre else
                              run / "checkpoints" / "step_00000002"), str(flat))
        return torch.load(flat, weights_only=True)["model"]["encoder.blocks.0.attn.q.weight"]

    delta = (block_weight(ft) - block_weight(pre)).abs().max()
    assert delta < 2 * 2 * 1.5e-4 + 1e-6  # two AdamW steps of at most ~lr each, plus warm-up

    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--init",
                            str(pre), "--out", str(tmp_path / "bad"), "--variant", "C",
                            "--lead", "6h", "--steps", "2", *FAST])
    assert r.exit_code == 1 and "pretrained encoder differs" in r.output
    assert "variant" in r.output and not (tmp_path / "bad").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, sample_appl_zarr):
    run = tmp_path / "dry"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--gpus", "4", "--tp", "2", "--preset", "small", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "dp 2 × tp 2" in r.output and "parameters" in r.output and "GiB" in r.output
    assert not run.exists()


def test_config_file_then_flags(tmp_path, sample_appl_zarr):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "{sample_appl_zarr}"\npreset = "small"\nsteps = 3\n')
    r = runner.invoke(app, ["pretrain", "--config", str(cfg), "--steps", "5", "--dry-run",
                            "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert '"small"' in r.output and "│ steps " in r.output.replace("┃", "│")
    assert any(line.split("│")[1:3] == [" steps         ", " 5                "]
               or ("steps" in line and " 5 " in line) for line in r.output.splitlines())


@pytest.mark.parametrize(("name", "text", "said"), [
    ("deep.toml", "a = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("big.toml", "# " + "x" * 2**20, "larger than a config file can be"),
])
def test_a_config_file_that_cannot_be_settings_is_one_line(tmp_path, name, text, said):
    cfg = tmp_path / name
    cfg.write_text(text)
    r = runner.invoke(app, ["pretrain", "--config", str(cfg), "--dry-run", "--out",
                            str(tmp_path / "run")])
    assert r.exit_code == 1 and said in r.output and name in r.output
    assert "Traceback" not in r.output


def _first_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.strip())


@pytest.mark.parametrize(("args", "message"), [
    (["--gpus", "4", "--tp", "3"], "not divisible by --tp 3"),
    (["--tp", "2", "--gpus", "2", "--groups", "3"], "3 channel groups cannot be split"),
    (["--patch", "5"], "not divisible by --patch 5"),
    (["--channels", "950-990"], "no band matches"),
    (["--crop", "64x64"], "larger than"),
    (["--precision", "fp8"], "--precision"),
    (["--steps", "1000000000000"], "--steps 1000000000000 is more than 1,000,000,000"),
])
def test_bad_settings_fail_before_training(tmp_path, sample_appl_zarr, args, message):
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out",
                            str(tmp_path / "r"), *args])
    assert r.exit_code == 1, r.output
    assert _first_line(r.output).startswith("error:") and message in r.output
    assert not (tmp_path / "r").exists()


def test_data_that_is_not_an_artifact_or_lacks_channels(tmp_path, sample_era5_zarr,
                                                        sample_appl_zarr):
    junk = tmp_path / "junk.zarr"
    zarr.open_group(str(junk), mode="w")
    r = runner.invoke(app, ["pretrain", "--data", str(junk)])
    assert r.exit_code == 1 and "not a dchag data artifact" in r.output
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                            "--channels", "z_500,q_925"])
    assert r.exit_code == 1 and "channels not in the artifact: q_925" in r.output
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_appl_zarr)])
    assert r.exit_code == 1 and "forecasting needs an era5 artifact" in r.output
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                            "--lead", "30d", "--out", str(tmp_path / "far")])
    assert r.exit_code == 1 and "too short" in r.output


def test_existing_runs_and_other_models_are_protected(tmp_path, sample_era5_zarr):
    run = tmp_path / "r"
    base = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h",
            "--out", str(run), "--steps", "2", *FAST]
    assert runner.invoke(app, base).exit_code == 0
    r = runner.invoke(app, base)
    assert r.exit_code == 1 and "already exists" in r.output and "--resume" in r.output
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run), "--preset", "small"])
    assert r.exit_code == 1 and "another model" in r.output and "preset" in r.output
    r = runner.invoke(app, ["train", "forecast", "--resume", str(tmp_path)])
    assert r.exit_code == 1 and "not a dchag run" in r.output
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run), "--steps", "1"])
    assert r.exit_code == 1 and "--steps 1 is below step 2, which the run has already " \
        "reached" in r.output


def test_more_gpus_than_present_is_refused(monkeypatch, tmp_path, sample_era5_zarr):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                            "--gpus", "8", "--lead", "6h", "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "8 ranks on this node but it has 2 GPU(s)" in r.output
    assert "--nnodes" in r.output  # more nodes are the way to more GPUs
    # Under a multi-node launcher only this node's ranks count.
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr("pipelines.train.resolve.describe_artifact",
                        lambda *a: (_ for _ in ()).throw(SystemExit(7)))
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                            "--lead", "6h", "--out", str(tmp_path / "r")])
    assert r.exit_code == 7  # got past the device check to reading the data


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
        monkeypatch, tmp_path, sample_era5_zarr):
    real_save = checkpoint_module.dcp.save
    calls = []

    def save(state, checkpoint_id):
        calls.append(checkpoint_id)
        if len(calls) == 2:  # the second checkpoint runs out of space half-way
            Path(checkpoint_id).mkdir(parents=True, exist_ok=True)
            (Path(checkpoint_id) / "__0_0.distcp").write_bytes(b"\0" * 1000)
            raise OSError(28, "No space left on device")
        return real_save(state, checkpoint_id=checkpoint_id)

    monkeypatch.setattr(checkpoint_module.dcp, "save", save)
    run = tmp_path / "r"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--lead",
                            "6h", "--out", str(run), "--steps", "8", *FAST])
    assert r.exit_code == 1
    assert "out of disk space" in r.output and "step_00000004 is intact" in r.output
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_00000004"]
    monkeypatch.setattr(checkpoint_module.dcp, "save", real_save)
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run)])
    assert r.exit_code == 0, r.output
    assert [m["step"] for m in _metrics(run)] == [2, 4, 6, 8]


def test_activation_checkpointing_changes_memory_not_results(tmp_path, sample_era5_zarr):
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h",
            "--steps", "4", *FAST]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "plain")]).exit_code == 0
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "ac"), "--ac"])
    assert r.exit_code == 0, r.output
    for x, y in zip(_metrics(tmp_path / "plain"), _metrics(tmp_path / "ac"), strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6)


def test_bf16_mixed_precision_trains_close_to_fp32(tmp_path, sample_era5_zarr):
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h",
            "--steps", "6", *FAST]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "fp32")]).exit_code == 0
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "bf16"), "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    assert xr.open_zarr(tmp_path / "bf16" / "metrics.zarr").attrs["dtype"] == "torch.bfloat16"
    a, b = _metrics(tmp_path / "fp32"), _metrics(tmp_path / "bf16")
    assert a[-1]["loss"] != b[-1]["loss"]  # really computed in another precision
    assert b[-1]["loss"] == pytest.approx(a[-1]["loss"], rel=0.05)


def test_loader_worker_processes_give_the_same_batches(tmp_path, sample_era5_zarr):
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h",
            "--steps", "4", "--batch-size", "2", "--log-every", "2", "--ckpt-every", "4"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "w0"), "--workers", "0"]
                         ).exit_code == 0
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "w2"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    a, b = _metrics(tmp_path / "w0"), _metrics(tmp_path / "w2")
    assert [m["loss"] for m in a] == [m["loss"] for m in b]


def test_resume_works_from_another_folder(tmp_path, monkeypatch, sample_era5_zarr):
    """config.json records inputs by absolute path: a relative --data still resolves."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "era5.zarr").symlink_to(sample_era5_zarr)
    monkeypatch.chdir(work)
    r = runner.invoke(app, ["train", "forecast", "--data", "era5.zarr", "--out", "run",
                            "--lead", "6h", "--steps", "4", "--stop-at", "2", *FAST])
    assert r.exit_code == 0, r.output
    saved = json.loads((work / "run" / "config.json").read_text())
    assert saved["data"] == str(work / "era5.zarr")
    monkeypatch.chdir(elsewhere)
    r = runner.invoke(app, ["train", "forecast", "--resume", str(work / "run")])
    assert r.exit_code == 0, r.output
    assert (work / "run" / "checkpoints" / "latest").read_text() == "step_00000004"


@pytest.mark.parametrize("env, message", [
    ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5 is not a rank of WORLD_SIZE=2"),
    ({"RANK": "0", "WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
])
def test_launcher_variables_that_cannot_work_are_refused_at_once(tmp_path, monkeypatch,
                                                                 sample_appl_zarr, env,
                                                                 message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--gpus", "2",
                            "--out", str(tmp_path / "r"), "--steps", "2", *FAST])
    assert r.exit_code == 1
    from tests.runner import one_error_line

    assert message in one_error_line(r.output)
    assert not (tmp_path / "r").exists()


def test_named_periods_are_the_run_s_periods(tmp_path, sample_era5_zarr):
    run = tmp_path / "named"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--lead", "6h", "--steps", "2",
                            "--train-period", "2018-01-01:2018-01-04",
                            "--val-period", "2018-01-05:2018-01-06",
                            "--test-period", "2018-01-07:2018-01-08", *FAST])
    assert r.exit_code == 0, r.output
    periods = json.loads((run / "model.json").read_text())["periods"]
    assert periods["test"] == ["2018-01-07T00", "2018-01-08T18"]
    assert periods["val"] == ["2018-01-05T00", "2018-01-06T12"]  # 6 h gap before the test
    assert periods["train"] == ["2018-01-01T00", "2018-01-04T12"]
    assert "train period ends at 2018-01-04T12" in r.output


def test_a_rank_computes_with_the_threads_omp_num_threads_gives(tmp_path, monkeypatch,
                                                                sample_era5_zarr):
    """A batch system's (or the user's) OMP_NUM_THREADS is the rank's share of the
    node; unset or unreadable, the cores are split among the ranks."""
    from pipelines.train.distributed import cpu_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    try:
        r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                                "--lead", "6h", "--steps", "1", "--workers", "0",
                                "--out", str(tmp_path / "run")])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 3  # the one rank ran in this process
    finally:
        torch.set_num_threads(before)
    cores = os.cpu_count() or 1
    for given in (None, "", "abc", "0"):
        if given is None:
            monkeypatch.delenv("OMP_NUM_THREADS")
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", given)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert cpu_threads() == max(1, cores // 2), given
