"""`--overwrite` replaces only dchag's own outputs, never an input, and `--dry-run` never
changes anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.runner import app, runner

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_prep_refuses_to_replace_its_own_input_folder(tmp_path):
    downloads = tmp_path / "downloads"
    shutil.copytree(SAMPLE / "era5", downloads)
    before = _tree(downloads)
    r = runner.invoke(app, ["prep", "era5", str(downloads), "--preset", "sample-14", "--out",
                            str(downloads), "--overwrite"])
    assert r.exit_code == 1
    assert "overlaps the input" in r.output or "not something dchag wrote" in r.output
    assert _tree(downloads) == before
    cubes = tmp_path / "cubes"
    shutil.copytree(SAMPLE / "appl", cubes)
    r = runner.invoke(app, ["prep", "appl", str(cubes / "manifest.csv"), "--out",
                            str(cubes), "--overwrite"])
    assert r.exit_code == 1 and _tree(cubes) == _tree(SAMPLE / "appl")


def test_training_refuses_a_run_folder_that_holds_its_data(tmp_path, sample_appl_zarr):
    project = tmp_path / "X"
    project.mkdir()
    shutil.copytree(sample_appl_zarr, project / "good.zarr")
    before = _tree(project)
    for extra in (["--dry-run"], []):
        r = runner.invoke(app, ["pretrain", "--data", str(project / "good.zarr"), "--out",
                                str(project), "--overwrite", *extra])
        assert r.exit_code == 1, r.output
        assert "overlaps the input" in r.output
    assert _tree(project) == before


@pytest.mark.parametrize("command", [
    ["bench", "memory", "--presets", "tiny", "--channels", "4", "--tp", "1"],
    ["quickstart", "--overwrite"],
])
def test_outputs_that_are_not_dchags_are_never_replaced(tmp_path, command):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = runner.invoke(app, [*command, "--out", str(mine)])
    assert r.exit_code == 1 and "not something dchag wrote" in r.output
    assert (mine / "notes.txt").read_text() == "keep me"


def test_dry_run_changes_nothing_even_with_overwrite(tmp_path, sample_era5_zarr):
    run = tmp_path / "run"
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--out", str(run),
            "--steps", "2", "--batch-size", "2", "--workers", "0", "--lead", "6h"]
    assert runner.invoke(app, args).exit_code == 0
    before = _tree(run)
    r = runner.invoke(app, [*args, "--overwrite", "--dry-run", "--steps", "4"])
    assert r.exit_code == 0, r.output
    assert _tree(run) == before
    r = runner.invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output  # a dchag run folder may be replaced
    assert (run / ".dchag").is_file()


def test_eval_out_naming_a_file_is_refused_and_nothing_is_left(tmp_path, sample_era5_zarr):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    run = tmp_path / "run"
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--out", str(run),
            "--steps", "2", "--batch-size", "2", "--workers", "0", "--lead", "6h"]
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--out", str(target)])
    assert r.exit_code == 1 and "is a file" in r.output
    assert target.read_text() == "mine"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--out", str(tmp_path / "ev"), "--lead",
                            "5d"])
    assert r.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "run"]


def test_prep_era5_refuses_a_store_inside_an_input_folder(tmp_path):
    """The next prep of that folder would read the store back as an input."""
    downloads = tmp_path / "dl"
    shutil.copytree(SAMPLE / "era5", downloads)
    before = _tree(downloads)
    r = runner.invoke(app, ["prep", "era5", str(downloads), "--preset", "sample-14",
                            "--out", str(downloads / "e.zarr")])
    assert r.exit_code == 1 and "overlaps the input" in r.output
    assert _tree(downloads) == before
