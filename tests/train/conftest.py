from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dchag_cli.app import app
from tests.conftest import REPO

runner = CliRunner()


@pytest.fixture(scope="session")
def sample_era5_zarr(tmp_path_factory) -> Path:
    """The shipped ERA5 sample (8 days, 6-hourly, 14 channels) prepared as era5.zarr."""
    out = tmp_path_factory.mktemp("era5z") / "era5.zarr"
    r = runner.invoke(app, ["prep", "era5", str(REPO / "sample_data" / "era5"),
                            "--preset", "sample-14", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def sample_appl_zarr(tmp_path_factory) -> Path:
    """The shipped hyperspectral sample (4 plants, 500 bands) at 16×16 pixels."""
    out = tmp_path_factory.mktemp("applz") / "appl.zarr"
    r = runner.invoke(app, ["prep", "appl", str(REPO / "sample_data" / "appl" / "manifest.csv"),
                            "--size", "16", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out
