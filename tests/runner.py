"""One CliRunner for tests that drive `dchag` in this process."""

from __future__ import annotations

from typer.testing import CliRunner

from dchag_cli.app import app

runner = CliRunner()

__all__ = ["app", "one_error_line", "runner"]


def one_error_line(output: str) -> str:
    """The output ends in exactly one `error:` line (notes may come before it), with no
    traceback; returns that line."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    assert "Traceback" not in output, output
    return errors[0]
