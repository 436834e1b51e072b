"""A small MAE run shared by the reconstruction tests (read-only: none of them writes
into it)."""

from __future__ import annotations

import pytest

from tests.runner import app, runner


@pytest.fixture(scope="session")
def mae_run(tmp_path_factory, sample_appl_zarr):
    run = tmp_path_factory.mktemp("mae") / "run"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--steps", "6", "--workers", "0", "--batch-size", "2",
                            "--ckpt-every", "6", "--val-every", "6"])
    assert r.exit_code == 0, r.output
    return run
