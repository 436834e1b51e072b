"""`--compile`: torch.compile per transformer block gives the eager loss curve, on
tensor-parallel gloo ranks with activation checkpointing, and the same checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.run.records import read_metrics
from tests.runner import app, runner


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run)]


@pytest.mark.slow
def test_compiled_training_matches_eager_on_two_ranks(tmp_path, sample_era5_zarr):
    args = ["train", "forecast", "--data", str(sample_era5_zarr), "--lead", "6h", "--gpus",
            "2", "--ac", "--steps", "6", "--workers", "0", "--batch-size", "2",
            "--log-every", "2", "--val-every", "6", "--ckpt-every", "6"]
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    assert runner.invoke(app, [*args, "--out", str(eager)]).exit_code == 0
    r = runner.invoke(app, [*args, "--out", str(compiled), "--compile"])
    assert r.exit_code == 0, r.output
    # inductor fuses and reorders float operations: equal to float32 rounding, not bits
    assert _losses(compiled) == pytest.approx(_losses(eager), rel=1e-4)
    # the same parameter names: an eager run resumes a compiled one
    r = runner.invoke(app, ["train", "forecast", "--resume", str(compiled), "--no-compile",
                            "--steps", "8"])
    assert r.exit_code == 0, r.output
