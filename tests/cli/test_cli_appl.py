"""`dchag sample appl`, `prep appl`, `show` and `bench prep-appl` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zarr

from tests.runner import app, one_error_line, runner


def test_sample_prep_and_show(tmp_path: Path):
    r = runner.invoke(app, ["sample", "appl", "--out", str(tmp_path / "raw"), "--n", "2",
                            "--size", "24"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "appl.zarr"
    r = runner.invoke(app, ["prep", "appl", str(tmp_path / "raw" / "manifest.csv"),
                            "--size", "16", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cubes/s" in r.output
    png = tmp_path / "s.png"
    r = runner.invoke(app, ["show", str(out), "--sample", "1", "--out", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["show", str(out), "--sample", "5"])
    assert r.exit_code == 1 and "out of range" in r.output


def test_prep_appl_errors_are_one_line(tmp_path: Path):
    r = runner.invoke(app, ["prep", "appl", str(tmp_path / "missing.hdr"),
                            "--out", str(tmp_path / "a.zarr")])
    assert r.exit_code == 1
    assert next(line for line in r.output.splitlines() if line.strip()).startswith("error:")
    r = runner.invoke(app, ["prep", "appl", str(tmp_path), "--range", "400-900"])
    assert r.exit_code == 1 and "FIRST:LAST" in r.output


def test_show_refuses_other_artifacts(tmp_path: Path):
    r = runner.invoke(app, ["show", str(tmp_path)])
    line = one_error_line(r.output)
    assert r.exit_code == 1 and str(tmp_path) in line
    assert "not a store dchag prep wrote" in line and "dchag prep appl" in line
    scores = tmp_path / "scores.zarr"
    zarr.open_group(str(scores), mode="w").attrs["dchag_artifact"] = "scores"
    r = runner.invoke(app, ["show", str(scores)])
    assert r.exit_code == 1
    assert "a dchag scores store: `dchag show` draws appl.zarr" in one_error_line(r.output)


def test_bench_prep_appl_writes_results(tmp_path: Path):
    out = tmp_path / "b.json"
    r = runner.invoke(app, ["bench", "prep-appl", "--cubes", "2", "--source-size", "16",
                            "--size", "16", "--bands", "20", "--steps", "2", "--preset",
                            "tiny", "--patch", "4", "--batch", "2", "--workers", "0",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert result["loader_samples_per_s"] > 0 and result["prep_cubes_per_s"] > 0
    assert result["consume_samples_per_s"] > 0 and result["band_list_samples_per_s"] > 0
    assert result["loader_vs_consumption"] == pytest.approx(
        result["loader_samples_per_s"] / result["consume_samples_per_s"])
    assert "training loader" in r.output and "tiny training consumes" in r.output


def test_sample_appl_without_prosail_says_how_to_get_it(tmp_path: Path, monkeypatch):
    import sys

    from tests.runner import one_error_line

    monkeypatch.setitem(sys.modules, "prosail", None)  # as if not installed
    r = runner.invoke(app, ["sample", "appl", "--out", str(tmp_path / "raw"), "--n", "1",
                            "--size", "16"])
    assert r.exit_code == 1
    assert "pip install 'dchag[sample]'" in one_error_line(r.output)
    assert not (tmp_path / "raw").exists()
