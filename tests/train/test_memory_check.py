"""Memory checked before any rank starts: too large is refused with the numbers and the
fix; small runs go ahead without the planner's cost."""

from __future__ import annotations

import pytest

from pipelines.bench import memory_check
from tests.runner import app, one_error_line, runner


def test_a_run_too_large_for_the_host_is_refused_before_ranks_start(
        tmp_path, monkeypatch, sample_appl_zarr):
    # a host with 64 MiB available: 8 CPU ranks of the 500-band cubes cannot fit
    monkeypatch.setattr(memory_check, "host_available_bytes", lambda: 64 * 2**20)
    run = tmp_path / "run"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--gpus", "8", "--tp", "4", "--variant", "L", "--steps", "2"])
    assert r.exit_code == 1
    line = one_error_line(r.output)
    assert "8 ranks ×" in line and "0.1 GiB available" in line
    assert "fewer --gpus" in line and "--no-memory-check" in line
    assert not run.exists()  # refused before the run folder or any rank


def test_no_memory_check_starts_anyway_with_a_note(tmp_path, monkeypatch, sample_appl_zarr):
    monkeypatch.setattr(memory_check, "host_available_bytes", lambda: 4 * 2**20)
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out",
                            str(tmp_path / "run"), "--gpus", "1", "--steps", "1",
                            "--workers", "0", "--no-memory-check"])
    assert r.exit_code == 0, r.output
    assert "--no-memory-check: starting although" in r.output


def test_small_runs_skip_the_planner(monkeypatch, sample_appl_zarr, tmp_path):
    from pipelines.bench import planner

    def never(*_a, **_k):
        raise AssertionError("planned a clearly small run")

    monkeypatch.setattr(planner, "plan", never)
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out",
                            str(tmp_path / "run"), "--gpus", "1", "--steps", "1",
                            "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "memory:" not in r.output


@pytest.mark.parametrize("available", [64 * 2**30])
def test_the_estimate_follows_the_batch(monkeypatch, sample_appl_zarr, available):
    """The check's per-rank number grows with the batch (what the refusal tells to lower)."""
    from pipelines.run.config import TrainConfig
    from pipelines.train.data import describe_artifact

    monkeypatch.setattr(memory_check, "QUICK_FRACTION", 0.0)  # always plan
    monkeypatch.setattr(memory_check, "host_available_bytes", lambda: available)
    sizes = []
    for batch in (2, 8):
        cfg = TrainConfig(task="mae", data=str(sample_appl_zarr), gpus=2, tp=2,
                          batch_size=batch, workers=0)
        art = describe_artifact(sample_appl_zarr, cfg)
        check = memory_check.check_memory(cfg, art, 2, gpu=False)
        assert check.planned and check.ranks_sharing == 2
        sizes.append(check.per_rank_bytes)
    assert sizes[1] > sizes[0]
