"""`dchag plan`: a layout search whose winners fit (by the memory planner), whose
commands run, and whose memory a second command re-derives."""

from __future__ import annotations

import json
import shlex

import pytest
import xarray as xr

from pipelines.bench.devices import Device
from pipelines.bench.layout_search import search
from pipelines.errors import DchagError
from tests.runner import app, runner


def test_the_walk_skips_what_planned_results_rule_out():
    dev = Device("toy", 1.0, 100.0, 100.0, "for a test")
    limit = dev.usable_bytes
    asked = []

    def planner(case):  # memory grows with the micro-batch; only ≤ 2 fits
        asked.append(case)
        return {"peak_mem_bytes": limit * (0.3 * case.batch + (0 if case.ac else 0.1))}

    res = search(2, dev, "tiny", 16, (32, 64), 4, "mae", planner, top=2, budget_plans=100,
                 micro_batches=(1, 2, 4, 8))
    assert res.candidates and all(c.fits for c in res.candidates)
    assert all(c.peak_mem_bytes <= limit for c in res.candidates)
    rates = [c.samples_per_s for c in res.candidates]
    assert rates == sorted(rates, reverse=True)
    assert any(c.case.variant == "baseline" for c in res.candidates)
    assert sum(c.case.variant != "baseline" for c in res.candidates) >= 2
    # micro-batches 4 and 8 are predicted from 1 and 2 and never planned
    assert {c.batch for c in asked} == {1, 2}
    assert res.planned == len(asked)
    assert res.ruled_out["memory extrapolated over the micro-batch exceeds the limit"] > 0


@pytest.mark.slow(seconds=35)
def test_plan_writes_runnable_commands_and_its_memory_is_rederived(tmp_path,
                                                                   sample_appl_zarr):
    out = tmp_path / "plan.json"
    r = runner.invoke(app, ["plan", "--gpus", "2", "--gpu", "a100-40gb", "--preset", "tiny",
                            "--channels", "500", "--img", "16x16", "--patch", "4",
                            "--top", "1", "--no-cache", "--out", str(out)])
    assert r.exit_code == 0, r.output
    plan = json.loads(out.read_text())
    best = plan["candidates"][0]
    for key in ("variant", "tp", "dp", "tree", "channel_impl", "ac", "micro_batch",
                "peak_mem_bytes", "step_s", "pretrain_command", "estimate_command"):
        assert key in best
    assert plan["roofline"]["efficiency"] == pytest.approx(0.4)
    assert "best D-CHAG vs the fastest baseline layout (" in r.output
    # memory is also set against the strongest baseline, folded, on D-CHAG's own layout
    same = plan["folded_baseline_same_layout"]
    assert same["variant"] == "baseline" and same["channel_impl"] == "folded"
    assert (same["tp"], same["dp"], same["micro_batch"]) == (best["tp"], best["dp"],
                                                             best["micro_batch"])
    assert same["peak_mem_bytes"] > 0
    assert "vs the strongest baseline (folded) on the same layout" in r.output
    # the training command is accepted as is (a dry run on the shipped cubes)
    args = shlex.split(best["pretrain_command"])[1:]
    dry = runner.invoke(app, [*args, "--data", str(sample_appl_zarr), "--out",
                              str(tmp_path / "run"), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    # the estimate command re-derives the planned peak
    check = shlex.split(best["estimate_command"])[1:]
    check[check.index("--out") + 1] = str(tmp_path / "check.zarr")
    again = runner.invoke(app, check)
    assert again.exit_code == 0, again.output
    peak = float(xr.open_zarr(tmp_path / "check.zarr").peak_mem_bytes.values[0])
    assert peak == pytest.approx(best["peak_mem_bytes"], rel=0.05)


def test_an_unknown_gpu_is_refused_with_the_table():
    r = runner.invoke(app, ["plan", "--gpus", "2", "--gpu", "tpu", "--channels", "8"])
    assert r.exit_code != 0 and "mi250x-64gb" in r.output


def test_cached_plans_answer_only_for_the_same_planner_code(tmp_path, monkeypatch):
    """An upgrade that changes how memory is planned (the model, its layout, the step, or
    torch) must not answer from plans made by the code before it."""
    from pipelines.bench import layout_search
    from pipelines.bench.case import Case

    case = Case("tiny", 16, "L", 0, 2, (32, 64), 4)
    cache = layout_search.PlanCache(tmp_path)
    cache.put(case, {"peak_mem_bytes": 123.0, "note": "kept", "skipped": [1]})
    assert cache.get(case) == {"peak_mem_bytes": 123.0, "note": "kept"}
    assert layout_search.PlanCache(tmp_path).get(Case("tiny", 16, "L", 0, 4, (32, 64), 4)) \
        is None
    monkeypatch.setattr(layout_search, "planner_code_key", lambda: "another planner")
    assert cache.get(case) is None


def _toy_planner(dev: Device):
    """Everything fits at half the memory: which layouts get checked is the walk's choice."""
    asked = []

    def planner(case):
        asked.append(case)
        return {"peak_mem_bytes": 0.5 * dev.usable_bytes}

    return planner, asked


def test_the_budget_counts_plans_so_the_answer_does_not_depend_on_the_clock():
    dev = Device("toy", 1.0, 100.0, 100.0, "for a test")
    planner, asked = _toy_planner(dev)
    res = search(2, dev, "tiny", 16, (32, 64), 4, "mae", planner, top=50, budget_plans=5,
                 micro_batches=(1, 2, 4))
    assert not res.complete
    # never more than the budget, the folded baseline on the best D-CHAG layout included
    assert res.planned == len(asked) <= 5 and res.candidates
    again, _ = _toy_planner(dev)
    second = search(2, dev, "tiny", 16, (32, 64), 4, "mae", again, top=50, budget_plans=5,
                    micro_batches=(1, 2, 4))
    assert [c.case for c in second.candidates] == [c.case for c in res.candidates]


def test_a_baseline_the_budget_never_reached_is_reported_not_checked(tmp_path, monkeypatch):
    """The roofline ranks D-CHAG first; a budget of four plans (a layout and its two
    micro-batch probes, and the folded baseline) stops before any baseline layout is
    judged, so the plan must not say that none fits."""
    from pipelines.bench import planner

    monkeypatch.setattr(planner, "plan", lambda case, limit_gib: {"peak_mem_bytes": 2.0**30})
    out = tmp_path / "plan.json"
    r = runner.invoke(app, ["plan", "--gpus", "2", "--gpu", "a100-40gb", "--preset", "tiny",
                            "--channels", "500", "--img", "16x16", "--patch", "4",
                            "--budget-plans", "4", "--no-cache", "--out", str(out)])
    assert r.exit_code == 0, r.output
    body = json.loads(out.read_text())
    assert body["search"]["complete"] is False and body["search"]["budget_plans"] == 4
    assert body["search"]["baseline_checked"] is False
    assert "no baseline layout fits" not in r.output
    assert "fastest baseline layout: not checked" in r.output


def test_a_budget_too_small_to_find_a_fit_says_so_not_that_nothing_fits(monkeypatch):
    from pipelines.bench import planner

    monkeypatch.setattr(planner, "plan", lambda case, limit_gib: {"peak_mem_bytes": 2.0**30})
    r = runner.invoke(app, ["plan", "--gpus", "2", "--gpu", "a100-40gb", "--preset", "tiny",
                            "--channels", "500", "--img", "16x16", "--patch", "4",
                            "--budget-plans", "2", "--no-cache", "--out", "/dev/null"])
    assert r.exit_code == 1
    assert "ended the search before a layout that fits was found" in r.output
    assert "fits tiny" not in r.output


def test_the_plan_body_is_computed_in_the_library(monkeypatch):
    """plan.json's numbers come from `plan_report`, not from the command that prints."""
    from pipelines.bench import planner
    from pipelines.bench.devices import device
    from pipelines.bench.plan_report import PlanRequest, plan_body, run_plan

    monkeypatch.setattr(planner, "plan", lambda case, limit_gib: {"peak_mem_bytes": 2.0**30})
    req = PlanRequest(2, device("a100-40gb", None, None, None), "tiny", 500, (16, 16), 4,
                      "mae", 1, 0.4, 4)
    body = plan_body(req, run_plan(req, None))
    assert body["model"] == {"preset": "tiny", "channels": 500, "img": "16x16", "patch": 4,
                             "task": "mae", "gpus": 2}
    best = body["candidates"][0]
    assert best["peak_mem_bytes"] == 2.0**30 and best["variant"] != "baseline"
    assert best["pretrain_command"].startswith("dchag pretrain --gpus 2 ")
    assert body["search"]["planned"] <= 4
    bad = PlanRequest(2, req.device, "tiny", 500, (18, 16), 4, "mae", 1, 0.4, 4)
    with pytest.raises(DchagError, match="not divisible by --patch 4"):
        bad.check()
