"""`dchag bench gpu`: what only a GPU can show, in one short run.

Three measurements, each row of `gpu.json` tagged by `kind`:

- `memory`: the planner's per-rank peak (fake tensors, `MemTracker`) beside the measured
  one (real tensors: CUDA's `max_memory_allocated`; on a CPU, `MemTracker` on the real
  step) for the strongest baseline (folded), the fused baseline, D-CHAG-L and D-CHAG-C,
  as one rank of a larger TP group (the fake process group, as `bench memory` does);
- `mfu`: step time, TFLOP/s and MFU (against the device's dense bf16 peak) of one rank,
  eager and with `--compile`;
- `channel_stage`: forward + backward time of the channel stage alone (tokenizer and
  aggregation) for each implementation, at two channel counts.

`--smoke` runs the same code at tiny sizes in fp32 (on a CPU: MFU left empty), so the GPU
path is tested where no GPU is. Nothing here imports zarr, netCDF4 or spectral.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from pipelines.bench.case import Case
from pipelines.bench.comm import Link
from pipelines.model.config import preset_config
from pipelines.model.encoder import DCHAGEncoder
from pipelines.model.init import init_weights
from pipelines.train.flops import peak_flops, rank_flops

LINK = Link("not used: one rank's compute", 1.0, 0.0)
VARIANTS = (("baseline", "folded"), ("baseline", "fused"), ("L", "fused"), ("C", "fused"))


@dataclass(frozen=True)
class GpuPlan:
    """The sizes one run measures: paper-like on a GPU, tiny with `smoke`."""

    memory_cases: list[Case]
    mfu_case: Case
    stage_preset: str
    stage_channels: tuple[int, ...]
    stage_img: tuple[int, int]
    stage_batch: int
    dtype: torch.dtype
    steps: int


def gpu_plan(smoke: bool) -> GpuPlan:
    if smoke:
        # one size: the second adds no code path, only time (each memory row is planned
        # and then measured under MemTracker, the slowest part on a CPU)
        base = [Case("tiny", 64, "L", 0, 2, (32, 64), 4)]
        mfu = Case("tiny", 32, "L", 0, 1, (32, 64), 4, batch=4, ac=False, ac_channels=False)
        return GpuPlan([replace(c, variant=v, channel_impl=i) for c in base for v, i in VARIANTS],
                       mfu, "tiny", (64, 128), (32, 64), 2, torch.float32, 3)
    # One H100 (80 GB): the authors' protocol at sizes one device holds as a rank of TP 8
    base = [Case("base", 512, "L", 0, 8, (128, 256), 4), Case("1b", 1024, "L", 0, 8, (64, 128), 4)]
    mfu = Case("1b", 128, "L", 0, 1, (128, 256), 4, batch=4, ac=False, ac_channels=False)
    return GpuPlan([replace(c, variant=v, channel_impl=i) for c in base for v, i in VARIANTS],
                   mfu, "1b", (512, 1024), (64, 128), 2, torch.bfloat16, 10)


def _in_fake_group(world: int, fn: Callable[[], dict]) -> dict:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        return fn()
    finally:
        dist.destroy_process_group()


def memory_row(case: Case, device: torch.device, dtype: torch.dtype) -> dict:
    from pipelines.bench.dchag_bench import measure

    def one(mode: str) -> dict:
        return _in_fake_group(case.world, lambda: measure(case, device, mode, LINK, 1, 1,
                                                           dtype, 1e6))

    planned, measured = one("estimate"), one("fake")
    p, m = planned["peak_mem_bytes"], measured["peak_mem_bytes"]
    return {"kind": "memory", "variant": case.variant, "channel_impl": case.channel_impl,
            "preset": case.preset, "channels": case.channels, "tp": case.tp,
            "img": f"{case.img[0]}x{case.img[1]}", "patch": case.patch, "batch": case.batch,
            "planner_peak_bytes": p, "measured_peak_bytes": m,
            "planner_over_measured": p / m if m else math.nan,
            "measured_with": "cuda max_memory_allocated" if device.type == "cuda"
            else "MemTracker on real tensors"}


def mfu_row(case: Case, device: torch.device, dtype: torch.dtype, steps: int) -> dict:
    from pipelines.bench.dchag_bench import median_step_time, training_step

    def run() -> dict:
        _, step = training_step(case, device, dtype, fake=False)
        t0 = time.perf_counter()
        step()  # the first step pays any compilation
        first = time.perf_counter() - t0
        step()
        return {"first_step_s": first, "step_s": median_step_time(step, device, steps)}

    timing = _in_fake_group(case.world, run)
    flops = rank_flops(case.model_config(), case.task, case.batch, 0.75, case.tp, True)
    tflops = flops["total"] / timing["step_s"] / 1e12
    peak = peak_flops(device)
    return {"kind": "mfu", "variant": case.variant, "channel_impl": case.channel_impl,
            "preset": case.preset, "channels": case.channels, "compiled": case.compile,
            "img": f"{case.img[0]}x{case.img[1]}", "batch": case.batch,
            "dtype": str(dtype).removeprefix("torch."), **timing,
            "tflops": tflops, "mfu": tflops * 1e12 / peak if peak else None}


def channel_stage_row(plan: GpuPlan, variant: str, impl: str, channels: int,
                      device: torch.device) -> dict:
    """Forward + backward of `DCHAGEncoder.embed` alone (median of `plan.steps`)."""
    cfg = preset_config(plan.stage_preset, channels, variant=variant, img_size=plan.stage_img,
                        patch=4, channel_impl=impl, depth=0)
    with torch.device(device):
        enc = DCHAGEncoder(cfg)
    init_weights(enc, 0)
    enc.to(plan.dtype)
    h, w = plan.stage_img
    x = torch.randn(plan.stage_batch, channels, h, w, device=device, dtype=plan.dtype)

    def step() -> None:
        enc.embed(x).float().square().mean().backward()

    from pipelines.bench.dchag_bench import step_times

    step()
    times = step_times(step, device, plan.steps)
    return {"kind": "channel_stage", "variant": variant, "channel_impl": impl,
            "channels": channels, "preset": plan.stage_preset,
            "img": f"{h}x{w}", "batch": plan.stage_batch,
            "step_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def run_gpu_bench(smoke: bool, device: torch.device, on_row: Callable[[dict], None]
                  ) -> list[dict]:
    plan = gpu_plan(smoke)
    dtype = plan.dtype if device.type == "cuda" or smoke else torch.float32
    rows: list[dict] = []

    def add(row: dict) -> None:
        row["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        rows.append(row)
        on_row(row)

    for case in plan.memory_cases:
        add(memory_row(case, device, dtype))
    for compiled in (False, True):
        add(mfu_row(replace(plan.mfu_case, compile=compiled), device, dtype, plan.steps))
    for channels in plan.stage_channels:
        for variant in ("baseline", "L"):
            for impl in ("direct", "fused", "folded"):
                add(channel_stage_row(plan, variant, impl, channels, device))
    return rows
