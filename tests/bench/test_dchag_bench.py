"""`dchag bench memory|throughput`: the sweep, its records, and the paper's memory claim
at toy scale (D-CHAG-L uses less memory per rank than pure TP, more so with channels)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

from dchag_cli.app import app
from dchag_cli.bench_dchag import build_cases
from pipelines.bench.dchag_bench import Case, comm_bytes
from pipelines.errors import DchagError

runner = CliRunner()


def test_sweep_skips_impossible_layouts_and_refuses_unknown_names():
    cases, skipped = build_cases("tiny,1b", "80", "baseline,L", "0,1", "2,8", "32x64", 4, 2)
    assert skipped == ["tiny tp 8 (4 heads)"]
    # baseline once per (preset, tp) — it has no tree; L for each tree
    assert len([c for c in cases if c.variant == "baseline"]) == 3
    assert len([c for c in cases if c.variant == "L"]) == 6
    with pytest.raises(DchagError, match="unknown preset"):
        build_cases("huge", "80", "L", "0", "2", "32x64", 4, 2)


def test_communicated_bytes_follow_the_formula():
    case = Case("tiny", 80, "L", 0, 4, (32, 64), 4, batch=2)
    cfg = case.model_config()
    sent = comm_bytes(cfg, 4, 2, 2)
    tokens = 2 * 128
    assert sent["gather"] == tokens * cfg.n_groups * 32 * 3 / 4 * 2
    assert sent["tp_allreduce"] == 2 * 4 * 2 * 3 / 4 * tokens * 32 * 2
    base = Case("tiny", 80, "baseline", 0, 4, (32, 64), 4).model_config()
    assert comm_bytes(base, 4, 2, 2)["gather"] == 0.0
    assert comm_bytes(cfg, 1, 2, 2) == {"gather": 0.0, "tp_allreduce": 0.0}


@pytest.mark.parametrize("mode", ["real", "fake"])
def test_memory_sweep_writes_records_and_figures(tmp_path: Path, mode: str):
    out = tmp_path / "bench.zarr"
    r = runner.invoke(app, ["bench", "memory", "--presets", "tiny", "--channels", "16,128",
                            "--variants", "baseline,L", "--tp", "2", "--img", "16x32",
                            "--steps", "1", "--mode", mode, "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = xr.open_zarr(out)
    assert ds.sizes["case"] == 4 and set(ds.mode.values) == {mode}
    assert (ds.peak_mem_bytes.values > 0).all() and (ds.step_s.values > 0).all()
    rows = {(str(v), int(c)): i for i, (v, c) in
            enumerate(zip(ds.variant.values, ds.channels.values, strict=True))}
    ratio = ds.mem_vs_baseline.values
    assert ratio[rows[("baseline", 16)]] == 1.0
    # D-CHAG-L needs less memory per rank than pure TP, and its advantage grows with C.
    assert ratio[rows[("L", 128)]] < ratio[rows[("L", 16)]] < 1.0
    # One all-gather per step for D-CHAG, none for the baseline; 2 all-reduces per ViT
    # block forward and 2 backward for both (tiny: depth 2).
    assert ds.n_all_gather.values[rows[("L", 16)]] == 1
    assert ds.n_all_gather.values[rows[("baseline", 16)]] == 0
    assert set(ds.n_all_reduce.values) == {8}
    assert ds.attrs["provenance"]["stage"] == "bench"
    for png in ("bench_memory.png", "bench_throughput.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
