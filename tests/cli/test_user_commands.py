"""The commands the tool is known by, typed as a user types them: defaults that chain the
stages, a tensor-parallel size the preset can take, one syntax for flags and config
files, help that reads well, and hints that name commands that exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from dchag_cli.app import cli
from pipelines.data.zarr_store import PRODUCERS
from tests.runner import app, one_error_line, runner

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "sample_data" / "appl" / "manifest.csv"
QUICK = ["--steps", "2", "--workers", "0", "--val-every", "2", "--ckpt-every", "2"]


@pytest.mark.slow
def test_the_hyperspectral_commands_run_as_typed(tmp_path, monkeypatch):
    """`dchag prep appl …` then `dchag pretrain --gpus 8 --variant L`: the tiny preset's 4
    heads cannot take tp 8, so tp 4 × dp 2 is chosen and said; 8 gloo ranks on this CPU
    start with a note; predict and eval find the run and the data where they were put."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["prep", "appl", str(MANIFEST), "--size", "16"])
    assert r.exit_code == 0 and (tmp_path / "appl.zarr").is_dir(), r.output
    proc = subprocess.run([sys.executable, "-m", "dchag_cli", "pretrain", "--gpus", "8",
                           "--variant", "L", *QUICK], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "training on appl.zarr" in proc.stderr
    assert "using --tp 4 (dp 2)" in proc.stderr and "pass --tp to choose" in proc.stderr
    if (os.cpu_count() or 1) < 8:
        assert "8 gloo ranks on" in proc.stderr
    config = json.loads((tmp_path / "runs" / "pretrain" / "config.json").read_text())
    assert config["tp"] == 4 and config["gpus"] == 8
    for args in (["predict", "masks", "--mask-ratio", "0.5"], ["eval", "masks"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    assert (tmp_path / "runs" / "pretrain" / "mask_scores.zarr").is_dir()


@pytest.mark.slow
def test_the_weather_commands_run_as_typed_up_to_a_7_day_lead(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["sample", "era5", "--days", "80", "--resolution", "5.625", "--out", "raw"],
                 ["prep", "era5", "raw", "--preset", "sample-14", "--clim-window", "91"],
                 ["train", "forecast", "--lead", "1d,7d", "--batch-size", "4", *QUICK]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--lead", "7d"])
    assert r.exit_code == 0, r.output
    assert "using runs/forecast" in r.output and "lead 7d" in r.output
    assert "lead 1w" not in r.output
    scores = xr.open_zarr(tmp_path / "runs" / "forecast" / "eval" / "scores.zarr")
    assert int(scores.n_inits.sel(lead=168)) > 0 and "test period" in scores.attrs["period"]


def test_pretrain_and_forecast_default_to_different_run_folders(tmp_path, monkeypatch,
                                                                 sample_era5_zarr):
    monkeypatch.chdir(tmp_path)
    for task, run in ((["pretrain"], "runs/pretrain"),
                      (["train", "forecast", "--lead", "6h"], "runs/forecast")):
        r = runner.invoke(app, [*task, "--data", str(sample_era5_zarr), "--dry-run"])
        assert r.exit_code == 0, r.output
        assert f'"{run}"' in r.output
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_missing_defaults_name_the_stage_that_makes_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["pretrain"])
    assert "dchag prep appl" in one_error_line(r.output)
    r = runner.invoke(app, ["train", "forecast"])
    assert "dchag prep era5" in one_error_line(r.output)
    r = runner.invoke(app, ["eval", "forecast", "--lead", "7d"])
    assert "dchag train forecast" in one_error_line(r.output)


def test_a_config_file_takes_the_flags_syntax(tmp_path, sample_era5_zarr):
    cfg = tmp_path / "fc.toml"
    cfg.write_text(f'data = "{sample_era5_zarr}"\nchannels = "z_500,t2m"\nlead = "6h,1d"\n'
                   'out-channels = "all"\n')
    r = runner.invoke(app, ["train", "forecast", "--config", str(cfg), "--dry-run"])
    assert r.exit_code == 0, r.output
    flags = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                                "--channels", "z_500,t2m", "--lead", "6h,1d",
                                "--out-channels", "all", "--dry-run"])
    assert flags.exit_code == 0, flags.output
    def resolved(output: str) -> str:
        start = output.index("resolved config")
        return output[start:output.index("\nplan", start)]

    table = resolved(r.output)
    assert table == resolved(flags.output)
    assert '["z_500", "t2m"]' in table and '"6h,1d"' in table and '["all"]' in table


def test_validation_that_reaches_only_some_leads_is_said(sample_era5_zarr):
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr),
                            "--lead", "6h,1d", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "validation times" in r.output and "reach only lead 6h" in r.output


def _commands(group: Any, prefix: str = "dchag") -> dict[str, Any]:
    found = {prefix: group}
    for name, sub in getattr(group, "commands", {}).items():
        found.update(_commands(sub, f"{prefix} {name}"))
    return found


def test_help_shows_defaults_and_readable_value_names():
    commands = _commands(cli())
    for name in ("dchag pretrain", "dchag train forecast", "dchag eval forecast",
                 "dchag prep era5", "dchag bench memory"):
        proc = subprocess.run([sys.executable, "-m", "dchag_cli", *name.split()[1:],
                               "--help"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "200"})
        assert proc.returncode == 0, proc.stderr
        for ugly in ("<list", "list[", "<bool>", "<path>", "BOOLEAN", "<int>"):
            assert ugly not in proc.stdout, (name, ugly)
        assert "[default: " in proc.stdout, name
    assert "dchag export weatherbench2" in commands


def test_every_hint_names_a_command_that_exists():
    commands = set(_commands(cli()))
    for producer in PRODUCERS.values():
        for command in producer.split(" or "):
            assert command in commands, command


def test_channels_lists_a_stores_channels(sample_era5_zarr, sample_appl_zarr):
    r = runner.invoke(app, ["channels", str(sample_era5_zarr)])
    assert r.exit_code == 0 and "14 channels" in r.output and "z_500" in r.output
    r = runner.invoke(app, ["channels", str(sample_appl_zarr)])
    assert r.exit_code == 0 and "500 channels" in r.output


@pytest.mark.parametrize("size,upsampled", [(64, True), (16, False)])
def test_prep_appl_says_when_it_upsamples(tmp_path, size, upsampled):
    r = runner.invoke(app, ["prep", "appl", str(MANIFEST), "--size", str(size), "--out",
                            str(tmp_path / "a.zarr")])
    assert r.exit_code == 0, r.output
    assert ("upsampled: no detail is gained" in r.output) == upsampled
