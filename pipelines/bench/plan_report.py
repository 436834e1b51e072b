"""`dchag plan`'s answer: the search asked for, then written as plan.json — each layout
with the exact command that trains it and the one that re-derives its memory."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from pipelines.bench.case import Case
from pipelines.bench.devices import USABLE, Device
from pipelines.bench.layout_search import (
    LATENCY_US,
    MICRO_BATCHES,
    Candidate,
    PlanCache,
    SearchResult,
    search,
)
from pipelines.errors import DchagError
from pipelines.model.config import PRESETS
from pipelines.provenance import code_version


@dataclass
class PlanRequest:
    gpus: int
    device: Device
    preset: str
    channels: int
    img: tuple[int, int]
    patch: int
    task: str
    top: int
    efficiency: float
    budget_plans: int

    def check(self) -> None:
        """Refuse a request the search cannot answer, before anything is planned."""
        if self.preset not in PRESETS:
            raise DchagError(f"unknown --preset {self.preset!r}",
                             fix=f"choose {', '.join(PRESETS)}")
        if self.task not in ("mae", "forecast"):
            raise DchagError(f"--task {self.task!r}", fix="choose mae or forecast")
        if min(self.gpus, self.channels, self.patch, self.top, self.budget_plans) < 1 or \
                not 0 < self.efficiency <= 1:
            raise DchagError("--gpus, --channels, --patch, --top and --budget-plans must be "
                             "at least 1, --efficiency in (0, 1]")
        if self.img[0] % self.patch or self.img[1] % self.patch:
            raise DchagError(f"--img {self.img[0]}x{self.img[1]} is not divisible by "
                             f"--patch {self.patch}")

    @property
    def limit_gib(self) -> float:
        return self.device.usable_bytes / 2**30


def run_plan(req: PlanRequest, cache_dir: Path | None, on_planned=None) -> SearchResult:
    """The search, with the memory planner as the judge of every layout it checks; refuses
    in one line when nothing fits or when the budget ended the search before a fit."""
    from pipelines.bench.planner import plan as memory_plan

    req.check()
    result = search(req.gpus, req.device, req.preset, req.channels, req.img, req.patch,
                    req.task, lambda case: memory_plan(case, req.limit_gib), req.top,
                    req.budget_plans, req.efficiency, PlanCache(cache_dir), on_planned,
                    MICRO_BATCHES)
    if not result.candidates and not result.complete:
        raise DchagError(f"the plan budget ({req.budget_plans} layouts) ended the search "
                         f"before a layout that fits was found ({result.planned} planned)",
                         fix="raise --budget-plans")
    if not result.candidates:
        raise DchagError(f"no layout of {req.gpus} × {req.device.name} fits {req.preset} "
                         f"with {req.channels} channels ({result.planned} planned, "
                         f"{sum(result.ruled_out.values())} ruled out)",
                         fix="more GPUs, a GPU with more memory, or a smaller --preset")
    return result


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


def plan_body(req: PlanRequest, result: SearchResult) -> dict:
    """plan.json: the device, the model, the roofline's assumptions, how far the search
    went, and the candidates best first."""
    dev = req.device
    same = result.folded_same_layout
    return {
        "device": {"name": dev.name, "memory_gib": dev.memory_gib, "usable_fraction": USABLE,
                   "peak_tflops_bf16": dev.peak_tflops, "link_gbs": dev.link_gbs,
                   "note": dev.note},
        "model": {"preset": req.preset, "channels": req.channels,
                  "img": f"{req.img[0]}x{req.img[1]}", "patch": req.patch, "task": req.task,
                  "gpus": req.gpus},
        "roofline": {"efficiency": req.efficiency, "latency_us_per_ring_step": LATENCY_US,
                     "compute": "busiest rank's FLOPs per step / (peak × efficiency); "
                                "× 4/3 with activation checkpointing",
                     "communication": "ring collectives of the step over the link, "
                                      "not overlapped with compute"},
        "search": {"considered": result.considered, "planned": result.planned,
                   "ruled_out": result.ruled_out, "seconds": round(result.seconds, 1),
                   "budget_plans": req.budget_plans, "complete": result.complete,
                   "baseline_checked": result.baseline_planned > 0},
        "dchag_version": code_version(),
        "candidates": [record(c, req.gpus, req.limit_gib) for c in result.candidates],
        "folded_baseline_same_layout": None if same is None else
        record(same, req.gpus, req.limit_gib),
    }
