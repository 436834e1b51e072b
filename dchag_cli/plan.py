"""`dchag plan`: which layout to run on a machine, D-CHAG's best beside the strongest
baseline's, each with the command that trains it and the one that re-derives its memory."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer
from rich.table import Table

from dchag_cli.console import err, human_bytes, out, user_errors
from dchag_cli.model import parse_size
from pipelines.bench.case import Case
from pipelines.bench.devices import DEVICES, USABLE, device
from pipelines.bench.layout_search import (
    EFFICIENCY,
    LATENCY_US,
    MICRO_BATCHES,
    Candidate,
    PlanCache,
    search,
)
from pipelines.errors import DchagError
from pipelines.model.config import PRESETS
from pipelines.provenance import code_version

CACHE = Path.home() / ".cache" / "dchag" / "plan"


def _switch(flag: str, on: bool) -> str:
    return f"--{flag}" if on else f"--no-{flag}"


def pretrain_command(c: Case, gpus: int) -> str:
    stage = ["dchag", "pretrain"] if c.task == "mae" else ["dchag", "train", "forecast"]
    return shlex.join([*stage, "--gpus", str(gpus), "--tp", str(c.tp), "--preset", c.preset,
                       "--variant", c.variant, "--tree", str(c.tree), "--channel-impl",
                       c.channel_impl, "--aggregation", c.aggregation, "--patch",
                       str(c.patch), "--batch-size", str(c.batch * c.dp),
                       _switch("ac", c.ac), _switch("ac-channels", c.ac_channels)])


def estimate_command(c: Case, limit_gib: float) -> str:
    return shlex.join(["dchag", "bench", "memory", "--estimate", "--presets", c.preset,
                       "--channels", str(c.channels), "--variants", c.variant, "--trees",
                       str(c.tree), "--tp", str(c.tp), "--dp", str(c.dp), "--img",
                       f"{c.img[0]}x{c.img[1]}", "--patch", str(c.patch), "--batch",
                       str(c.batch), "--channel-impl", c.channel_impl, "--aggregation",
                       c.aggregation, _switch("ac", c.ac), _switch("ac-channels",
                                                                    c.ac_channels),
                       "--task", c.task, "--memory-limit", f"{limit_gib:.4g}", "--out",
                       "plan_check.zarr"])


def record(c: Candidate, gpus: int, limit_gib: float) -> dict:
    k = c.case
    return {"variant": k.variant, "tp": k.tp, "dp": k.dp, "tree": k.tree,
            "channel_impl": k.channel_impl, "aggregation": k.aggregation, "ac": k.ac,
            "ac_channels": k.ac_channels, "micro_batch": k.batch,
            "global_batch": k.batch * k.dp, "peak_mem_bytes": c.peak_mem_bytes,
            "step_s": c.step_s, "compute_s": c.compute_s, "comm_s": c.comm_s,
            "samples_per_s": c.samples_per_s, "pretrain_command": pretrain_command(k, gpus),
            "estimate_command": estimate_command(k, limit_gib)}


@user_errors
def plan(
    gpus: int = typer.Option(..., help="GPUs to plan for (tp × dp)."),
    gpu: str = typer.Option(None, help=f"The device: {', '.join(DEVICES)}."),
    gpu_memory: float = typer.Option(None, help="GiB per GPU (overrides --gpu's)."),
    peak_tflops: float = typer.Option(None, help="Dense bf16 TFLOP/s per GPU."),
    link_gbps: float = typer.Option(None, help="GB/s per direction between GPUs."),
    preset: str = typer.Option("1b", help=f"Model preset: {', '.join(PRESETS)}."),
    channels: int = typer.Option(..., help="Input channels."),
    img: str = typer.Option("128x256", help="Image HEIGHTxWIDTH."),
    patch: int = typer.Option(4, help="Patch size."),
    task: str = typer.Option("mae", help="mae (pretraining) or forecast."),
    top: int = typer.Option(3, help="D-CHAG layouts to verify with the memory planner."),
    efficiency: float = typer.Option(EFFICIENCY, help="Fraction of the bf16 peak the "
                                     "roofline assumes the step's FLOPs run at."),
    budget_plans: int = typer.Option(12, help="Layouts the memory planner checks at most "
                                     "(a 1b layout takes about a CPU-minute; cached ones "
                                     "count too, so the answer never depends on load)."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help=f"Reuse planner results "
                               f"({CACHE})."),
    out_path: Path = typer.Option(Path("plan.json"), "--out", "-o", help="The ranked plan."),
) -> None:
    """Search the layouts of --gpus GPUs for a model and pick the fastest that fits:
    D-CHAG variant and tree or the pure-TP baseline, tp × dp, channel stage, activation
    checkpointing, micro-batch.

    Time per step from a stated roofline (FLOPs per rank and component at --efficiency of
    the peak, collective bytes over the link); memory from the memory planner (fake tensors,
    as `dchag bench memory --estimate`). Writes plan.json: candidates best first, each with
    the exact training command and the command that re-derives its memory.

    Example: [cyan]dchag plan --gpus 16 --gpu mi250x-64gb --preset 1b --channels 1024[/]
    """
    if preset not in PRESETS:
        raise DchagError(f"unknown --preset {preset!r}", fix=f"choose {', '.join(PRESETS)}")
    if task not in ("mae", "forecast"):
        raise DchagError(f"--task {task!r}", fix="choose mae or forecast")
    if min(gpus, channels, patch, top, budget_plans) < 1 or not 0 < efficiency <= 1:
        raise DchagError("--gpus, --channels, --patch, --top and --budget-plans must be at "
                         "least 1, --efficiency in (0, 1]")
    size = parse_size(img)
    if size[0] % patch or size[1] % patch:
        raise DchagError(f"--img {img} is not divisible by --patch {patch}")
    dev = device(gpu, gpu_memory, peak_tflops, link_gbps)
    limit_gib = dev.usable_bytes / 2**30
    err.print(f"planning {preset}, {channels} channels, {img}/{patch}, {task} on {gpus} × "
              f"{dev.describe()}; roofline at {efficiency:.0%} of peak")
    from pipelines.bench.planner import plan as memory_plan

    def planned(c: Candidate, hit: bool) -> None:
        k = c.case
        verdict = human_bytes(c.peak_mem_bytes) + (" fits" if c.fits else " too large")
        err.print(f"  {'cached ' if hit else ''}{k.variant} tree {k.tree} {k.channel_impl} "
                  f"tp {k.tp} dp {k.dp} ac {'on' if k.ac else 'off'} micro-batch {k.batch}: "
                  f"{verdict}")

    result = search(gpus, dev, preset, channels, size, patch, task,
                    lambda case: memory_plan(case, limit_gib), top, budget_plans,
                    efficiency, PlanCache(CACHE if cache else None), planned,
                    MICRO_BATCHES)
    if not result.candidates and not result.complete:
        raise DchagError(f"the plan budget ({budget_plans} layouts) ended the search before "
                         f"a layout that fits was found ({result.planned} planned)",
                         fix="raise --budget-plans")
    if not result.candidates:
        raise DchagError(f"no layout of {gpus} × {dev.name} fits {preset} with {channels} "
                         f"channels ({result.planned} planned, "
                         f"{sum(result.ruled_out.values())} ruled out)",
                         fix="more GPUs, a GPU with more memory, or a smaller --preset")
    records = [record(c, gpus, limit_gib) for c in result.candidates]
    body = {"device": {"name": dev.name, "memory_gib": dev.memory_gib,
                       "usable_fraction": USABLE, "peak_tflops_bf16": dev.peak_tflops,
                       "link_gbs": dev.link_gbs, "note": dev.note},
            "model": {"preset": preset, "channels": channels, "img": img, "patch": patch,
                      "task": task, "gpus": gpus},
            "roofline": {"efficiency": efficiency, "latency_us_per_ring_step": LATENCY_US,
                         "compute": "busiest rank's FLOPs per step / (peak × efficiency); "
                                    "× 4/3 with activation checkpointing",
                         "communication": "ring collectives of the step over the link, "
                                          "not overlapped with compute"},
            "search": {"considered": result.considered, "planned": result.planned,
                       "ruled_out": result.ruled_out, "seconds": round(result.seconds, 1),
                       "budget_plans": budget_plans, "complete": result.complete,
                       "baseline_checked": result.baseline_planned > 0},
            "dchag_version": code_version(),
            "candidates": records,
            "folded_baseline_same_layout": None if result.folded_same_layout is None else
            record(result.folded_same_layout, gpus, limit_gib)}
    tmp = out_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2))
    tmp.replace(out_path)
    _print(result.candidates, records, result, out_path)


def _print(cands: list[Candidate], records: list[dict], result, out_path: Path) -> None:
    table = Table(title="layouts that fit, fastest first (memory: the planner's peak per "
                  "rank; time: the roofline)", title_justify="left")
    for col in ("#", "variant", "channel stage", "tp × dp", "ac", "micro-batch", "mem/rank",
                "step s", "samples/s"):
        table.add_column(col, justify="left" if col in ("variant", "channel stage")
                         else "right")
    for i, c in enumerate(cands, 1):
        k = c.case
        name = "baseline (pure TP)" if k.variant == "baseline" else \
            f"D-CHAG-{k.variant} tree {k.tree}"
        table.add_row(str(i), name, k.channel_impl, f"{k.tp} × {k.dp}",
                      "on" if k.ac else "off", str(k.batch), human_bytes(c.peak_mem_bytes),
                      f"{c.step_s:.3g}", f"{c.samples_per_s:.3g}")
    out.print(table)
    best = next((c for c in cands if c.case.variant != "baseline"), None)
    base = next((c for c in cands if c.case.variant == "baseline"), None)
    if best and base:
        k = base.case
        out.print(f"best D-CHAG vs the fastest baseline layout ({k.channel_impl}, tp {k.tp} "
                  f"× dp {k.dp}, micro-batch {k.batch}): "
                  f"{best.samples_per_s / base.samples_per_s:.2f}× the samples/s, "
                  f"{best.peak_mem_bytes / base.peak_mem_bytes:.2f}× the memory per rank",
                  soft_wrap=True)
    elif best and (result.complete or result.baseline_planned):
        out.print("no baseline layout fits: only D-CHAG trains this model on this machine")
    elif best:
        out.print("fastest baseline layout: not checked (the plan budget ended the search "
                  "first; raise --budget-plans)", soft_wrap=True)
    same = result.folded_same_layout
    if best and same is not None:
        out.print(f"best D-CHAG vs the strongest baseline (folded) on the same layout: "
                  f"{best.peak_mem_bytes / same.peak_mem_bytes:.2f}× the memory per rank "
                  f"({human_bytes(same.peak_mem_bytes)} for the baseline"
                  f"{'' if same.fits else ', which does not fit'}), "
                  f"{best.samples_per_s / same.samples_per_s:.2f}× the samples/s",
                  soft_wrap=True)
    if not result.complete:
        out.print(f"[yellow]the plan budget ended the search[/] after {result.planned} "
                  "layouts: raise --budget-plans to check more", soft_wrap=True)
    first = records[0]
    out.print(f"train it: {first['pretrain_command']}", markup=False, soft_wrap=True)
    out.print(f"check its memory: {first['estimate_command']}", markup=False,
              soft_wrap=True)
    out.print(f"{result.planned} layouts planned, {sum(result.ruled_out.values())} ruled "
              f"out of {result.considered} in {result.seconds:.0f} s; written: {out_path}")
