"""The D-CHAG vs pure-TP sweep of `dchag bench memory|throughput`: the cases a sweep
asks for, measured, each set against the strongest baseline of its group, and written."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import torch

from pipelines.bench.case import MODES, Case
from pipelines.bench.comm import Link
from pipelines.bench.dchag_bench import run_in_process, run_real_rank
from pipelines.data.zarr_store import check_writable_target, write_records
from pipelines.errors import DchagError
from pipelines.model.config import CHANNEL_IMPLS, PRESETS, VARIANTS, parse_size
from pipelines.provenance import provenance
from pipelines.run.config import AGGREGATIONS
from pipelines.train.distributed import launch

GROUP_KEYS = ("preset", "channels", "tp", "dp", "img", "patch", "batch")


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise DchagError(f"--{name} {text!r} is not a comma list of integers") from exc


def _names(text: str, name: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise DchagError(f"--{name} {text!r}", fix=f"choose from {', '.join(allowed)}")
    return items


def build_cases(presets: str, channels: str, variants: str, trees: str, tps: str, img: str,
                patch: int, batch: int, dps: str = "1", impls: str = "fused",
                aggregations: str = "head-split", ac: bool = True, ac_channels: bool = True,
                compile_blocks: bool = False, task: str = "forecast"
                ) -> tuple[list[Case], list[str]]:
    """The sweep's cases, and notes on the combinations that cannot exist. `impls` "auto":
    the baseline in both its channel stages (`folded`, the strongest, and `fused`), D-CHAG
    in `fused` — every ratio is then against the strongest baseline."""
    names = [p.strip() for p in presets.split(",") if p.strip()]
    for p in names:
        if p not in PRESETS:
            raise DchagError(f"unknown preset {p!r}", fix=f"choose from {', '.join(PRESETS)}")
    kinds = _names(variants, "variants", VARIANTS)
    if task not in ("forecast", "mae"):
        raise DchagError(f"--task {task!r}", fix="choose forecast or mae")
    auto = impls == "auto"
    impl_list = ["folded", "fused"] if auto else _names(impls, "channel-impl", CHANNEL_IMPLS)
    agg_list = _names(aggregations, "aggregation", AGGREGATIONS)
    size = parse_size(img)
    tree_list = _ints(trees, "trees")
    for name, values in (("channels", _ints(channels, "channels")), ("tp", _ints(tps, "tp")),
                         ("dp", _ints(dps, "dp")), ("trees", tree_list)):
        if not values or min(values) < (0 if name == "trees" else 1):
            raise DchagError(f"--{name} {','.join(map(str, values))}: give positive values")
    if patch < 1 or batch < 1:
        raise DchagError("--patch and --batch must be at least 1")
    cases, skipped = [], []
    for preset, c, v, t, tp, dp, impl, agg in itertools.product(
            names, _ints(channels, "channels"), kinds, tree_list, _ints(tps, "tp"),
            _ints(dps, "dp"), impl_list, agg_list):
        if v == "baseline" and t != tree_list[0]:
            continue  # the baseline has no tree
        if auto and v != "baseline" and impl != "fused":
            continue
        heads = PRESETS[preset]["heads"]
        if heads % tp:
            skipped.append(f"{preset} tp {tp} ({heads} heads)")
            continue
        if size[0] % patch or size[1] % patch:
            raise DchagError(f"--img {img} is not divisible by --patch {patch}")
        cases.append(Case(preset, c, v, t if v != "baseline" else 0, tp, size, patch, batch,
                          dp, impl, agg, ac, ac_channels, task, compile=compile_blocks))
    if not cases:
        raise DchagError("no valid case in the sweep", fix="; ".join(skipped))
    return cases, sorted(set(skipped))


def run_sweep(cases: list[Case], mode: str, warmup: int, steps: int, link: Link,
              memory_limit_gib: float, out_path: Path, precision: str = "auto",
              on_start: Callable[[str], None] = lambda line: None,
              on_done: Callable[[dict], None] = lambda record: None) -> list[dict]:
    """Every case measured (real ranks, or rank 0 of a fake process group), each against
    the strongest baseline of its group, written as one tidy zarr table."""
    check_writable_target(out_path, overwrite=True, kinds=("bench",))
    gpu = torch.cuda.is_available()
    if mode == "auto":
        mode = "fake" if gpu else "real"
    if mode not in MODES:
        raise DchagError(f"--mode {mode!r}", fix=f"choose auto, {', '.join(MODES)}")
    device = torch.device("cuda", 0) if gpu and mode != "estimate" else torch.device("cpu")
    dtype = _dtype(precision, gpu, mode)
    world = max(c.world for c in cases)
    if mode == "real" and gpu and world > torch.cuda.device_count():
        raise DchagError(f"--mode real needs {world} GPUs, this machine has "
                         f"{torch.cuda.device_count()}", fix="use --mode fake or --estimate")
    limit = memory_limit_gib * 2**30
    on_start(f"{len(cases)} cases, mode {mode} on {device.type}, "
             f"{str(dtype).removeprefix('torch.')} compute, {link.describe()}")
    records: list[dict] = []
    if mode in ("fake", "estimate"):
        records = run_in_process(cases, device, mode, link, warmup, steps, dtype, limit,
                                                 on_done=on_done)
    else:
        for ranks, group in itertools.groupby(sorted(cases, key=lambda c: (c.world, c.tp)),
                                              key=lambda c: (c.world, c.tp)):
            batch = list(group)
            done = launch(run_real_rank, (batch, link, warmup, steps,
                                          str(dtype).removeprefix("torch."), limit), ranks[0])
            for r in done:
                on_done(r)
            records += done
    add_ratios(records)
    write_records(records, out_path, {
        "dchag_artifact": "bench", "mode": mode, "link": link.describe(),
        "memory": ("CUDA max_memory_allocated (reserved beside it)" if device.type == "cuda"
                   else "torch MemTracker peak" + (" of fake tensors (nothing allocated)"
                                                   if mode == "estimate" else "")),
        "comm": "measured (in the step)" if mode == "real" else
                f"modelled: {link.describe()}",
        "ratios": "against the strongest baseline of the same preset, channels, tp, dp, "
                  "image, patch and batch: least memory for mem_vs_baseline, fastest step "
                  "for speed_vs_baseline",
        "provenance": provenance("bench", {"mode": mode, "warmup": warmup, "steps": steps,
                                           "link": link.describe(),
                                           "memory_limit_gib": memory_limit_gib}, [],
                                 seed=0)}, dim="case")
    return records


def _dtype(precision: str, gpu: bool, mode: str) -> torch.dtype:
    if precision not in ("auto", "bf16", "fp32"):
        raise DchagError(f"--precision {precision!r}", fix="choose auto, bf16 or fp32")
    if precision == "auto":  # bf16 as the protocol says; a CPU's real steps in fp32
        return torch.bfloat16 if gpu or mode == "estimate" else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def add_ratios(records: list[dict]) -> None:
    """Memory and speed relative to the strongest baseline of the same group: the one
    with the least memory, and the fastest one (they may differ; both are named)."""
    def key(r: dict) -> tuple:
        return tuple(r[k] for k in GROUP_KEYS)

    ok = [r for r in records if r["variant"] == "baseline"
          and math.isfinite(r.get("peak_mem_bytes", math.nan))]
    for r in records:
        pool = [b for b in ok if key(b) == key(r)]
        mem = min(pool, key=lambda b: b["peak_mem_bytes"], default=None)
        timed = [b for b in pool if math.isfinite(b.get("step_s", math.nan))]
        fast = min(timed, key=lambda b: b["step_s"], default=None)
        fine = math.isfinite(r.get("peak_mem_bytes", math.nan))
        r["baseline_kind"] = mem["aggregation_kind"] if mem else ""
        r["baseline_impl"] = mem["channel_impl"] if mem else ""
        r["mem_vs_baseline"] = r["peak_mem_bytes"] / mem["peak_mem_bytes"] if mem and fine \
            else None
        r["speed_baseline_kind"] = fast["aggregation_kind"] if fast else ""
        r["speed_vs_baseline"] = (fast["step_s"] / r["step_s"]
                                  if fast and fine and math.isfinite(r["step_s"]) else None)
