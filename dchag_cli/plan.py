"""`dchag plan`: which layout to run on a machine, D-CHAG's best beside the strongest
baseline's, each with the command that trains it and the one that re-derives its memory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dchag_cli.console import err, human_bytes, out, user_errors
from pipelines.bench.devices import DEVICES, device
from pipelines.bench.layout_search import EFFICIENCY, Candidate, SearchResult
from pipelines.bench.plan_report import PlanRequest, plan_body, run_plan
from pipelines.fsops import write_json
from pipelines.model.config import PRESETS, parse_size

CACHE = Path.home() / ".cache" / "dchag" / "plan"


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
                                     "(a 1b layout takes about half a CPU-minute; cached "
                                     "ones count too, so the answer never depends on load)."),
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
    dev = device(gpu, gpu_memory, peak_tflops, link_gbps)
    req = PlanRequest(gpus, dev, preset, channels, parse_size(img), patch, task, top,
                      efficiency, budget_plans)
    req.check()
    err.print(f"planning {preset}, {channels} channels, {img}/{patch}, {task} on {gpus} × "
              f"{dev.describe()}; roofline at {efficiency:.0%} of peak")
    result = run_plan(req, CACHE if cache else None, _planned)
    body = plan_body(req, result)
    write_json(out_path, body)
    _print(result, body["candidates"], out_path)


def _planned(c: Candidate, hit: bool) -> None:
    k = c.case
    verdict = human_bytes(c.peak_mem_bytes) + (" fits" if c.fits else " too large")
    err.print(f"  {'cached ' if hit else ''}{k.variant} tree {k.tree} {k.channel_impl} "
              f"tp {k.tp} dp {k.dp} ac {'on' if k.ac else 'off'} micro-batch {k.batch}: "
              f"{verdict}")


def _print(result: SearchResult, records: list[dict], out_path: Path) -> None:
    out.print(_table(result.candidates))
    for line in _comparisons(result):
        out.print(line, soft_wrap=True)
    first = records[0]
    out.print(f"train it: {first['pretrain_command']}", markup=False, soft_wrap=True)
    out.print(f"check its memory: {first['estimate_command']}", markup=False,
              soft_wrap=True)
    out.print(f"{result.planned} layouts planned, {sum(result.ruled_out.values())} ruled "
              f"out of {result.considered} in {result.seconds:.0f} s; written: {out_path}")


def _table(cands: list[Candidate]) -> Table:
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
    return table


def _comparisons(result: SearchResult) -> list[str]:
    """D-CHAG's best against the fastest baseline layout and the folded baseline on its
    own layout; a verdict only about layouts the search checked."""
    cands = result.candidates
    best = next((c for c in cands if c.case.variant != "baseline"), None)
    base = next((c for c in cands if c.case.variant == "baseline"), None)
    lines = []
    if best and base:
        k = base.case
        lines.append(f"best D-CHAG vs the fastest baseline layout ({k.channel_impl}, tp "
                     f"{k.tp} × dp {k.dp}, micro-batch {k.batch}): "
                     f"{best.samples_per_s / base.samples_per_s:.2f}× the samples/s, "
                     f"{best.peak_mem_bytes / base.peak_mem_bytes:.2f}× the memory per rank")
    elif best and (result.complete or result.baseline_planned):
        lines.append("no baseline layout fits: only D-CHAG trains this model on this "
                     "machine")
    elif best:
        lines.append("fastest baseline layout: not checked (the plan budget ended the "
                     "search first; raise --budget-plans)")
    same = result.folded_same_layout
    if best and same is not None:
        lines.append(f"best D-CHAG vs the strongest baseline (folded) on the same layout: "
                     f"{best.peak_mem_bytes / same.peak_mem_bytes:.2f}× the memory per rank "
                     f"({human_bytes(same.peak_mem_bytes)} for the baseline"
                     f"{'' if same.fits else ', which does not fit'}), "
                     f"{best.samples_per_s / same.samples_per_s:.2f}× the samples/s")
    if not result.complete:
        lines.append(f"[yellow]the plan budget ended the search[/] after {result.planned} "
                     "layouts: raise --budget-plans to check more")
    return lines
