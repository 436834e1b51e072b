"""One CliRunner for tests that drive `dchag` in this process."""

from __future__ import annotations

from typer.testing import CliRunner

from dchag_cli.app import app

runner = CliRunner()

__all__ = ["app", "runner"]
