"""A chain of stages (`recipe`, `quickstart`, `bench parity`) stops at the first stage that
fails, with that stage's exit code: a failure is never reported as success."""

from __future__ import annotations

from dchag_cli import recipes
from dchag_cli.console import err
from dchag_cli.root import run_stage
from tests.runner import app, runner


def test_one_stage_reports_its_exit_code_usage_errors_included(capsys):
    assert run_stage(["channels", "sample-14"]) == 0
    assert run_stage(["channels", "no-such-preset"]) == 1
    assert run_stage(["prep", "era5", "--no-such-flag"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_the_recipe_stops_at_its_first_failed_stage_and_makes_its_work_folder(tmp_path):
    work = tmp_path / "wb"
    r = runner.invoke(app, ["recipe", "weatherbench", "--work", str(work), "--source",
                            str(tmp_path / "missing.zarr"), "--gpus", "1", "--steps", "2"])
    assert r.exit_code == 1, r.output
    assert "1/3" in r.output and "2/3" not in r.output and "3/3" not in r.output
    assert sum(ln.startswith("error:") for ln in r.output.splitlines()) == 1, r.output
    assert "stopped: stage 1/3 failed (exit code 1)" in r.output
    assert work.is_dir() and not (work / "era5.zarr").exists()


def test_a_dry_run_that_cannot_read_its_source_fails(tmp_path):
    r = runner.invoke(app, ["recipe", "weatherbench", "--work", str(tmp_path / "wb"),
                            "--source", str(tmp_path / "missing.zarr"), "--dry-run"])
    assert r.exit_code == 1, r.output
    assert "stopped: the dry run failed" in r.output
    assert not (tmp_path / "wb").exists()


def test_the_quickstart_stops_at_its_first_failed_stage(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "sample_era5",
                        lambda folder: [["prep", "era5", str(folder / "absent_raw"),
                                         "--out", str(folder / "era5.zarr")]])
    out = tmp_path / "qs"
    r = runner.invoke(app, ["quickstart", "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert "stopped: stage 1 failed (exit code 1)" in r.output
    assert "2/7" not in r.output and "quickstart finished" not in r.output
    assert not (out / "forecast").exists()


def test_echoed_commands_are_whole_at_any_terminal_width(tmp_path, monkeypatch):
    monkeypatch.setattr(err, "width", 60)  # a narrow terminal
    r = runner.invoke(app, ["recipe", "weatherbench", "--work", str(tmp_path / "a-long-name"
                                                                    "-for-the-work-folder"),
                            "--source", str(tmp_path / "missing.zarr"), "--gpus", "1"])
    echoed = [ln for ln in r.output.splitlines() if ln.startswith("dchag prep era5")]
    assert echoed and echoed[0].endswith("/a-long-name-for-the-work-folder/era5.zarr"), \
        r.output


def test_a_stage_that_aborts_returns_a_failure_code(monkeypatch):
    """Abort (a confirmation declined, Ctrl-C in a prompt) is a failed stage, not a crash
    of the chain's own error handling."""
    import typer

    from dchag_cli import root

    def abort() -> None:
        raise typer.Abort()

    tiny = typer.Typer()
    tiny.command("abort")(abort)
    tiny.command("fine")(lambda: None)
    monkeypatch.setattr(root, "build", lambda names=None: tiny)
    assert root.run_stage(["abort"]) == 1
    assert root.run_stage(["fine"]) == 0
