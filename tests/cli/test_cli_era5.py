"""The command line as a user meets it: help, version, prep era5, errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr
from typer.testing import CliRunner

from dchag_cli.app import app
from pipelines import __version__
from tests.conftest import SAMPLE_ERA5
from tests.runner import one_error_line

runner = CliRunner()


def test_version_and_help_list_the_stages():
    assert runner.invoke(app, ["--version"]).output.strip() == f"dchag {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in ("prep", "sample", "bench", "channels"):
        assert stage in result.output


def test_prep_era5_on_the_shipped_sample(tmp_path: Path):
    out = tmp_path / "era5.zarr"
    result = runner.invoke(app, ["prep", "era5", str(SAMPLE_ERA5), "--preset", "sample-14",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "fields/s" in result.output
    ds = xr.open_zarr(out)
    assert ds["data"].shape == (32, 14, 32, 64)
    assert ds.attrs["provenance"]["command"].startswith("dchag") or ds.attrs["provenance"][
        "command"]


def test_bad_input_is_one_line_exit_1_and_no_store(tmp_path: Path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"\x00not netcdf")
    out = tmp_path / "era5.zarr"
    result = runner.invoke(app, ["prep", "era5", str(bad), "--out", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.nc" in lines[0] and lines[0].startswith("error:")
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_unknown_preset_and_channel_are_explained(tmp_path: Path):
    r = runner.invoke(app, ["prep", "era5", str(SAMPLE_ERA5), "--preset", "nope",
                            "--out", str(tmp_path / "x.zarr")])
    assert r.exit_code == 1 and "choose one of" in r.output
    r = runner.invoke(app, ["prep", "era5", str(SAMPLE_ERA5), "--channels", "zz_500",
                            "--out", str(tmp_path / "x.zarr")])
    assert r.exit_code == 1 and "unknown pressure-level variable" in r.output


def test_sample_era5_writes_cds_files_that_prep_reads(tmp_path: Path):
    r = runner.invoke(app, ["sample", "era5", "--out", str(tmp_path / "raw"), "--days", "2",
                            "--resolution", "10", "--preset", "wb-5"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "era5_pressure_levels_2018-01-01.nc", "era5_single_levels_2018-01-01.nc"]
    r = runner.invoke(app, ["prep", "era5", str(tmp_path / "raw"), "--preset", "wb-5",
                            "--out", str(tmp_path / "e.zarr")])
    assert r.exit_code == 0, r.output
    assert xr.open_zarr(tmp_path / "e.zarr")["data"].shape == (8, 5, 32, 64)


def test_channels_lists_presets_with_counts():
    r = runner.invoke(app, ["channels"])
    assert r.exit_code == 0 and "era5-80" in r.output and "84" in r.output
    r = runner.invoke(app, ["channels", "wb-5"])
    assert "z_500, t_850, t2m, u10, v10" in r.output


def test_bench_regrid_writes_its_results(tmp_path: Path):
    out = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "regrid", "--fields", "4", "--xarray-fields", "1",
                            "--repeats", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    rates = result["fields_per_s"]
    assert rates["dchag"] > 0 and rates["dchag --weights FILE"] > 0
    assert rates["scipy CSR (batched, W @ X.T)"] > 0 and rates["xarray.interp"] > 0
    assert result["max_abs_diff_vs_xarray"] < 1e-3 and result["max_abs_diff_vs_scipy"] < 1e-5
    assert result["dchag_share_of_limit"] > 0 and result["bytes_read_per_field"] == 64 * 1440 * 4
    assert "bandwidth limit" in r.output


def test_show_era5_maps_channels_at_a_time_and_tabulates_them(tmp_path, sample_era5_zarr):
    png = tmp_path / "m.png"
    r = runner.invoke(app, ["show", str(sample_era5_zarr), "--channels", "z_500,u10",
                            "--time", "2018-01-03T12", "--out", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2018-01-03T12 UTC" in r.output
    z500 = next(line for line in r.output.splitlines() if "z_500" in line)
    assert "m**2 s**-2" in z500
    r = runner.invoke(app, ["show", str(sample_era5_zarr), "--channels", "z_501"])
    assert r.exit_code == 1 and "no channel z_501" in r.output
    r = runner.invoke(app, ["show", str(sample_era5_zarr), "--time", "2030-01-01"])
    assert r.exit_code == 1 and "not in the store" in r.output and not png.with_name(
        "era5-2030-01-01.png").exists()
    # no silent rounding or stepping to another time, no empty channel list
    for args, message in ((["--time", "2018-01-03T12:30"], "whole hours"),
                          (["--time", "2018-01-03T13"], "nearest are 2018-01-03T12, "
                                                        "2018-01-03T18"),
                          (["--channels", ","], "names no channel")):
        r = runner.invoke(app, ["show", str(sample_era5_zarr), *args,
                                "--out", str(tmp_path / "x.png")])
        assert r.exit_code == 1 and message in one_error_line(r.output), r.output
        assert not (tmp_path / "x.png").exists()
