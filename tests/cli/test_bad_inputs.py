"""Every bad option or input a careless user might type gets one line, a non-zero exit, no
traceback, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner import app, one_error_line, runner

S = str(Path(__file__).resolve().parents[2] / "sample_data")
ERA5 = [f"{S}/era5", "--preset", "sample-14", "--out", "o.zarr"]
APPL = [f"{S}/appl/manifest.csv", "--out", "a.zarr"]
FC = ["train", "forecast", "--data", "era5.zarr", "--out", "r1"]
MAE = ["pretrain", "--data", "appl.zarr", "--out", "r2"]
CONFIGS = {"type.toml": 'steps = "abc"\n', "list.toml": "steps = [1, 2]\n",
           "top.yaml": "- 1\n- 2\n", "bool.toml": "lr = true\n", "unknown.toml": "stepz = 3\n",
           "broken.toml": "steps = \n", "latin1.yaml": "steps: 2  # caf\xe9\n"}

CASES = [
    *[["prep", "era5", *ERA5, *x] for x in (
        ["--resolution", "0"], ["--resolution", "nan"], ["--resolution", "-5.625"],
        ["--resolution", "7"], ["--clim-window", "-5"], ["--clim-window", "60"],
        ["--clim-hour-step", "5"], ["--method", "cubic"], ["--backend", "xesmf"],
        ["--backend", "other"], ["--train-years", "abc"], ["--train-years", "1900"],
        ["--train-years", "2020:2010"], ["--region", "x"], ["--region", "60:20,0:10"],
        ["--weights", "era5.zarr"], ["--append"], ["--append", "--overwrite"])],
    ["prep", "era5", f"{S}/era5", "--channels", ",", "--out", "o.zarr"],
    ["prep", "era5", f"{S}/era5", "--preset", "nope", "--out", "o.zarr"],
    ["prep", "era5", f"{S}/era5", "--channels", "z_501", "--out", "o.zarr"],
    ["prep", "era5", "nowhere.nc", "--out", "o.zarr"],
    ["prep", "era5", f"{S}/appl/plant_000.raw", "--out", "o.zarr"],
    ["prep", "era5", *ERA5[:3], "--out", "missing/dir/o.zarr"],
    ["prep", "era5", *ERA5[:3], "--out", "era5.zarr"],
    *[["prep", "appl", *APPL, *x] for x in (
        ["--size", "0"], ["--size", "100000"], ["--bands", "1"], ["--range", "x"],
        ["--range", "900:400"], ["--range", "300:900"], ["--ndvi", "nan"],
        ["--spatial", "zoom"], ["--dtype", "int8"], ["--scale", "0"], ["--dark", "x.hdr"],
        ["--min-plant-pixels", "0"], ["--wavelengths", "nowhere.txt"])],
    *[[*FC, *x] for x in (
        ["--patch", "0"], ["--patch", "-4"], ["--patch", "7"], ["--batch-size", "0"],
        ["--lead", ","], ["--lead", "0h"], ["--lead", "1.5h"], ["--lead", "99999d"],
        ["--lr", "nan"], ["--lr", "-1"], ["--gpus", "0"], ["--tp", "0"], ["--tp", "3"],
        ["--groups", "0"], ["--groups", "100"], ["--tree", "5"], ["--preset", "huge"],
        ["--variant", "X"], ["--precision", "fp8"], ["--val-fraction", "2"],
        ["--val-fraction", "-1"], ["--workers", "-1"], ["--timeout-min", "0"],
        ["--clip", "-1"], ["--warmup", "-1"], ["--min-lr", "-1"], ["--weight-decay", "-1"],
        ["--stop-at", "0"], ["--channels", "nope"], ["--out-channels", "nope"],
        ["--init", "nowhere"], ["--init", "era5.zarr"], ["--steps", "0"], ["--keep", "0"],
        *(["--config", name] for name in CONFIGS), ["--config", "nowhere.toml"])],
    ["train", "forecast", "--data", "appl.zarr", "--out", "r1"],
    ["train", "forecast", "--out", "r1"],
    ["train", "forecast", "--resume", "nowhere"],
    ["train", "forecast", "--resume", "era5.zarr"],
    *[[*MAE, *x] for x in (
        ["--mask-ratio", "1.5"], ["--crop", "0x0"], ["--crop", "abc"], ["--crop", "-4x8"],
        ["--crop", "64x64"])],
    ["pretrain", "--data", "nothing.zarr", "--out", "r2"],
    ["pretrain", "--data", "appl.zarr", "--out", "appl.zarr", "--overwrite", "--dry-run"],
    ["eval", "forecast", "--run", "nowhere", "--data", "era5.zarr"],
    ["eval", "forecast", "--run", "era5.zarr", "--data", "era5.zarr"],
    ["eval", "masks", "--recon", "era5.zarr", "--data", "appl.zarr"],
    ["eval", "masks", "--recon", "nowhere.zarr", "--data", "appl.zarr"],
    ["predict", "masks", "--run", "era5.zarr", "--data", "appl.zarr"],
    *[["model", "info", "--preset", "tiny", *x] for x in (
        ["--patch", "0"], ["--img", "0x0"], ["--batch", "0"], ["--tp", "0"],
        ["--channels", "0"], ["--img", "abc"], ["--task", "x"], ["--variant", "Z"])],
    *[["bench", "memory", "--presets", "tiny", *x, "--out", "b.zarr"] for x in (
        ["--channels", "0"], ["--channels", "abc"], ["--tp", "0"], ["--img", "3x3"],
        ["--presets", "huge"], ["--variants", "Q"], ["--trees", "-1"], ["--batch", "0"])],
    ["bench", "memory", "--presets", "tiny", "--tp", "1", "--channels", "4", "--out",
     "era5.zarr"],
    ["bench", "regrid", "--fields", "0", "--out", "x.json"],
    ["bench", "prep-appl", "--cubes", "0", "--out", "x.json"],
    ["sample", "era5", "--out", "s1", "--days", "0"],
    ["sample", "era5", "--out", "s1", "--start", "2018-13-45"],
    ["prep", "era5", *ERA5, "--member", "3"],  # the sample has no ensemble members
    ["sample", "era5", "--out", "s1", "--resolution", "0"],
    ["sample", "appl", "--out", "s2", "--n", "0"],
    ["sample", "appl", "--out", "s2", "--size", "0"],
    ["show", "era5.zarr", "--sample", "99"],
    ["show", "appl.zarr", "--sample", "99"],
    ["show", "nothing.zarr"],
    ["channels", "nope"],
    ["quickstart", "--out", "era5.zarr", "--overwrite"],
]


@pytest.fixture
def workdir(tmp_path, monkeypatch, sample_era5_zarr, sample_appl_zarr) -> Path:
    (tmp_path / "era5.zarr").symlink_to(sample_era5_zarr)
    (tmp_path / "appl.zarr").symlink_to(sample_appl_zarr)
    for name, text in CONFIGS.items():  # latin1.yaml: a config that is not UTF-8
        (tmp_path / name).write_bytes(text.encode("latin-1" if "latin1" in name else "utf-8"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c)[:60] for c in CASES])
def test_bad_input_gives_one_line_and_leaves_nothing(workdir, args):
    before = sorted(p.name for p in workdir.iterdir())
    r = runner.invoke(app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code != 0, r.output
    if r.exit_code == 1:
        one_error_line(r.output)
    else:  # a usage error (exit 2): Typer's own box naming the option
        assert r.exit_code == 2 and ("Usage:" in r.output or "╭" in r.output), r.output
    assert sorted(p.name for p in workdir.iterdir()) == before
