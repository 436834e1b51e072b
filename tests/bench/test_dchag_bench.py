"""`dchag bench`: the sweep, its records, the memory planner, and the paper's memory claim at
toy scale (D-CHAG-L needs less memory per rank than the strongest pure-TP baseline, more
so with channels)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from dchag_cli.app import app
from pipelines.bench.case import Case
from pipelines.bench.comm import Link, step_comm
from pipelines.bench.dchag_bench import run_in_process
from pipelines.bench.sweep import build_cases
from pipelines.errors import DchagError

runner = CliRunner()
LINK = Link("test link", 100.0, 5.0)
FIELDS = ("preset", "channels", "variant", "tree", "tp", "dp", "img", "patch", "batch", "mode",
          "peak_mem_bytes", "reserved_bytes", "flops_per_rank", "step_s", "fits",
          "baseline_kind", "baseline_impl", "channel_impl", "compute_s_min", "compute_s_max")


def test_sweep_skips_impossible_layouts_and_refuses_unknown_names():
    cases, skipped = build_cases("tiny,1b", "80", "baseline,L", "0,1", "2,8", "32x64", 4, 2)
    assert skipped == ["tiny tp 8 (4 heads)"]
    # baseline once per (preset, tp) — it has no tree; L for each tree
    assert len([c for c in cases if c.variant == "baseline"]) == 3
    assert len([c for c in cases if c.variant == "L"]) == 6
    both, _ = build_cases("tiny", "80", "L", "0", "2", "32x64", 4, 2, impls="fused,direct",
                          aggregations="head-split,replicated")
    assert {(c.channel_impl, c.aggregation) for c in both} == {
        ("fused", "head-split"), ("fused", "replicated"), ("direct", "head-split"),
        ("direct", "replicated")}
    with pytest.raises(DchagError, match="unknown preset"):
        build_cases("huge", "80", "L", "0", "2", "32x64", 4, 2)


def test_communicated_bytes_follow_the_ring_formulas():
    case = Case("tiny", 80, "L", 0, 4, (32, 64), 4, batch=2)
    cfg = case.model_config()
    tokens, d, g = 2 * 128, 32, cfg.n_groups
    sent = step_comm(case, 2, 1000, LINK)
    assert sent["comm_gather_bytes"] == tokens * g * d * 2 * 3 / 4
    # Case's default: activation checkpointing, one more all-reduce per block
    assert sent["comm_vit_bytes"] == 5 * cfg.depth * 2 * 3 / 4 * tokens * d * 2
    plain = step_comm(replace(case, ac=False), 2, 1000, LINK)
    assert plain["comm_vit_bytes"] == 4 * cfg.depth * 2 * 3 / 4 * tokens * d * 2
    assert sent["comm_aggregation_bytes"] == 2 * 3 / 4 * (tokens * d + tokens * g * d) * 2
    assert sent["comm_fsdp_bytes"] == 0  # dp 1
    base = step_comm(Case("tiny", 80, "baseline", 0, 4, (32, 64), 4), 2, 1000, LINK)
    assert "comm_gather_bytes" not in base
    # the head-split baseline all-reduces the gradient of every channel token
    assert base["comm_aggregation_bytes"] == 2 * 3 / 4 * (tokens * d + tokens * 80 * d) * 2
    folded = step_comm(Case("tiny", 80, "baseline", 0, 4, (32, 64), 4, channel_impl="folded"),
                       2, 1000, LINK)  # no tokens: the tokenizer's weight gradients
    assert folded["comm_aggregation_bytes"] == 2 * 3 / 4 * (tokens * d + 80 * 17 * d) * 2
    rep = step_comm(Case("tiny", 80, "L", 0, 4, (32, 64), 4, aggregation="replicated"), 2,
                    1000, LINK)
    assert "comm_aggregation_bytes" not in rep
    steps = 3 + 5 * cfg.depth * 6 + 12  # gather + ViT (with AC) + aggregation, ring steps
    assert sent["comm_s_modelled"] == pytest.approx(steps * 5e-6 + sent["comm_bytes"] / 1e11)


@pytest.mark.parametrize("variant", ["baseline", "L", "C"])
def test_the_planner_agrees_with_real_tensors(variant):
    """Fake tensors (nothing allocated) against the same step on real tensors."""
    case = Case("small", 96, variant, 1 if variant == "C" else 0, 2, (16, 32), 4, dp=2)
    kwargs = dict(device=torch.device("cpu"), link=LINK, warmup=1, steps=1,
                  dtype=torch.bfloat16, memory_limit=2**36)
    real = run_in_process([case], mode="fake", **kwargs)[0]
    planned = run_in_process([case], mode="estimate", **kwargs)[0]
    assert planned["peak_mem_bytes"] == pytest.approx(real["peak_mem_bytes"], rel=0.02)
    assert planned["mem_optstate_bytes"] == real["mem_optstate_bytes"] > 0
    assert planned["flops_per_rank"] == real["flops_per_rank"]


@pytest.mark.parametrize("mode", ["real", "fake", "estimate"])
@pytest.mark.slow
def test_memory_sweep_writes_records_and_figures(tmp_path: Path, mode: str):
    out = tmp_path / "bench.zarr"
    r = runner.invoke(app, ["bench", "memory", "--presets", "tiny", "--channels", "16,128",
                            "--variants", "baseline,L", "--tp", "2", "--img", "16x32",
                            "--steps", "1", "--mode", mode, "--no-ac", "--no-ac-channels",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = xr.open_zarr(out)
    # by default the baseline runs in both exact channel stages (folded, fused), D-CHAG fused
    assert ds.sizes["case"] == 6 and set(ds.mode.values) == {mode}
    for name in FIELDS:
        assert name in ds, name
    for name in ("channels", "tp", "dp", "tree", "patch", "batch"):
        assert ds[name].dtype.kind == "i", name  # integers stay integers
    assert (ds.peak_mem_bytes.values > 0).all() and ds.fits.values.all()
    assert (ds.flops_per_rank.values > 0).all()
    rows = {(str(v), str(impl), int(c)): i for i, (v, impl, c) in
            enumerate(zip(ds.variant.values, ds.channel_impl.values, ds.channels.values,
                          strict=True))}
    rows |= {(v, c): rows[(v, "fused", c)] for v, _, c in list(rows) if v == "L"}
    ratio = ds.mem_vs_baseline.values
    # every ratio is against the strongest baseline: the folded one, itself 1.0
    assert ratio[rows[("baseline", "folded", 16)]] == 1.0
    assert ratio[rows[("baseline", "fused", 16)]] > 1.0
    assert set(ds.baseline_impl.values) == {"folded"}
    assert set(ds.baseline_kind.values) == {"head-split, folded"}
    # D-CHAG-L needs less memory per rank than pure TP, and its advantage grows with C.
    assert ratio[rows[("L", 128)]] < ratio[rows[("L", 16)]] < 1.0
    if mode != "estimate":
        assert (ds.step_s.values > 0).all()
        # One all-gather per step for D-CHAG, none for the baseline; per ViT block two
        # all-reduces forward and two backward, and one each way for the head-split
        # aggregation (tiny: depth 2).
        assert ds.n_all_gather.values[rows[("L", 16)]] == 1
        assert ds.n_all_gather.values[rows[("baseline", "fused", 16)]] == 0
        reduces = {(v, impl): int(n) for v, impl, n in zip(
            ds.variant.values, ds.channel_impl.values, ds.n_all_reduce.values, strict=True)}
        assert reduces[("L", "fused")] == reduces[("baseline", "fused")] == 4 * 2 + 2
        assert reduces[("baseline", "folded")] == 4 * 2 + 3  # + the tokenizer's gradients
    assert ds.attrs["provenance"]["stage"] == "bench"
    assert (tmp_path / "bench_memory.png").read_bytes()[:4] == b"\x89PNG"
