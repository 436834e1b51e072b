"""Per-rank memory, FLOPs and step time of D-CHAG against the strongest pure-TP baseline.

Three ways to run a case of tp × dp ranks:
- `real`: tp·dp processes (gloo on CPU, NCCL on GPUs), communication included.
- `fake`: this process is rank 0 of torch's fake process group: real tensors, so memory
  and compute are rank 0's own, but collectives return at once — their time is modelled
  (`comm.py`) and labelled so. One GPU measures a tp-8 rank this way.
- `estimate` (the memory planner): the fake process group *and* fake tensors
  (`FakeTensorMode`): every tensor a step would allocate is tracked by torch's
  `MemTracker`, none is allocated. Any preset (tiny … 26b) on any machine, in minutes;
  it agrees with the real-tensor measurement (tested) and, where a GPU is present, is
  reported beside CUDA's peak.

The model is built as training builds it (meta device → TP → AC → FSDP → shards), so the
measured memory is what a run would need. Memory: CUDA's `max_memory_allocated` and
`max_memory_reserved` on GPUs; `MemTracker`'s peak elsewhere (reserved then unknown).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from pipelines.bench.case import Case
from pipelines.bench.comm import Link, step_comm
from pipelines.model.factory import make_model
from pipelines.model.forecast import lat_weighted_mse
from pipelines.progress import NoProgress, Progress
from pipelines.train.build import Layout, build_sharded
from pipelines.train.flops import COMPONENTS, peak_flops, rank_flops
from pipelines.train.optim import build_optimizer, clear_grads

MASK_RATIO = 0.75  # MAE cases
MEM_CATEGORIES = {"Parameter": "params", "Gradient": "grads", "Optstate": "optstate",
                  "Activation": "activations", "Temp": "temp", "Buffer": "buffers",
                  "Other": "other"}


def measure(case: Case, device: torch.device, mode: str, link: Link, warmup: int,
            steps: int, dtype: torch.dtype, memory_limit: float,
            progress: Progress | None = None) -> dict:
    """One case on this rank (a process group of world size tp·dp, real or fake, exists)."""
    with warnings.catch_warnings():
        # Module hooks of the memory and collective trackers fire on outputs when the
        # inputs need no gradient (synthetic data): expected, and harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message=".*sequential all_gather.*")
        return _measure(case, device, mode, link, warmup, steps, dtype, memory_limit,
                        progress or NoProgress())


def _measure(case: Case, device: torch.device, mode: str, link: Link, warmup: int,
             steps: int, dtype: torch.dtype, memory_limit: float, progress: Progress
             ) -> dict:
    _free(device)  # the previous case's tensors are gone by now (after an OOM too)
    cfg = case.model_config()
    split = case.aggregation == "head-split"
    flops = rank_flops(cfg, case.task, case.batch, MASK_RATIO, case.tp, split)
    record = {**case.record(), "mode": mode, "device": _device_name(device),
              "dtype": str(dtype).removeprefix("torch."), "groups": cfg.n_groups,
              "tokens": cfg.num_patches, "link": link.describe(),
              "flops_per_rank": flops["total"],
              **{f"flops_{k}": flops[k] for k in COMPONENTS}}
    fake = mode == "estimate"
    # a 7b plan takes minutes: the model, each warm-up step and the measured step
    progress.start(2 + max(1, warmup), "laying out the model, warm-up step, measured step")
    try:
        model, step = training_step(case, device, dtype, fake)
        progress.advance()
        record["params"] = whole_model_parameters(case)
        record["params_per_rank"] = sum(_local(p).numel() for p in model.parameters())
        with step.mode:
            record.update(_peak_memory(step, model, device, warmup, fake, progress))
        if fake:
            record.update(compute_s=math.nan, compute_s_min=math.nan,
                          compute_s_max=math.nan, n_all_gather=-1, n_all_reduce=-1)
        else:
            times = step_times(step, device, steps)
            record.update(compute_s=statistics.median(times), compute_s_min=min(times),
                          compute_s_max=max(times))
            record.update(_count_collectives(step))
    except torch.OutOfMemoryError:
        _free(device)
        record.update(fits=False, peak_mem_bytes=math.nan, reserved_bytes=math.nan,
                      step_s=math.nan, compute_s=math.nan)
        return record
    record.update(step_comm(case, torch.finfo(dtype).bits // 8, record["params_per_rank"],
                            link))
    modelled = mode != "real"
    record["comm_s_modelled"] = record["comm_s_modelled"] if modelled else 0.0
    step_s = record["compute_s"] + record["comm_s_modelled"]
    limit = memory_limit if fake or device.type != "cuda" else torch.cuda.get_device_properties(
        device).total_memory
    peak = max(record["peak_mem_bytes"], record.get("reserved_bytes") or 0.0)
    peak_flops_ = peak_flops(device)
    record.update(step_s=step_s, fits=bool(peak <= limit), memory_limit_bytes=float(limit),
                  samples_per_s=case.batch * case.dp / step_s,
                  tokens_per_s=case.batch * case.dp * cfg.num_patches * case.channels / step_s,
                  tflops_per_rank=flops["total"] / record["compute_s"] / 1e12,
                  mfu=flops["total"] / record["compute_s"] / peak_flops_ if peak_flops_
                  else math.nan)
    return record


def training_step(case: Case, device: torch.device, dtype: torch.dtype, fake: bool):
    """The model as training lays it out, AdamW (foreach, CUDA's default), synthetic
    inputs, and a closure running one forward + backward + optimizer step."""
    mesh = init_device_mesh(device.type, (case.dp, case.tp), mesh_dim_names=("dp", "tp"))
    layout = Layout(tp_mesh=mesh["tp"], dp_mesh=mesh["dp"], device=device,
                    compute_dtype=dtype, ac=case.ac, ac_channels=case.ac_channels,
                    split_aggregation=case.aggregation == "head-split", fsdp=case.dp > 1,
                    compile=case.compile)
    materialize = _fake_mode() if fake else None
    cfg = case.model_config()
    model = build_sharded(lambda: make_model(cfg, case.task), layout, None if fake else 0,
                          materialize)
    with materialize or contextlib.nullcontext():
        opt = build_optimizer(model, 1e-4, 0.05, foreach=True)
        h, w = case.img
        gen = None if fake else torch.Generator(device=device).manual_seed(1)
        x = torch.randn(case.batch, case.channels, h, w, device=device, generator=gen)
        y = torch.randn(case.batch, case.out_channels, h, w, device=device, generator=gen)
        lead = torch.full((case.batch,), 24.0, device=device)
        lat = torch.linspace(-87.0, 87.0, h, device=device)
        noise = torch.rand(case.batch, cfg.num_patches, device=device, generator=gen)

    def loss() -> torch.Tensor:
        if case.task == "mae":
            return model(x, mask_ratio=MASK_RATIO, noise=noise)[0]
        return lat_weighted_mse(model(x, lead), y, lat)

    def step() -> None:
        loss().backward()
        opt.step()
        clear_grads(model)

    step.optimizer = opt  # type: ignore[attr-defined]
    # The fake mode must be the outer one when MemTracker (itself a dispatch mode) runs.
    step.mode = materialize or contextlib.nullcontext()  # type: ignore[attr-defined]
    return model, step


_FAKE = None


def _fake_mode():
    """One FakeTensorMode for a case: its tensors must not meet another mode's."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    global _FAKE
    _FAKE = FakeTensorMode(allow_non_fake_inputs=True)
    return _FAKE


def whole_model_parameters(case: Case) -> int:
    with torch.device("meta"):
        model = make_model(case.model_config(), case.task)
        return sum(p.numel() for p in model.parameters())


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if hasattr(p, "to_local") else p


def _peak_memory(step, model, device: torch.device, warmup: int, fake: bool,
                 progress: Progress) -> dict:
    for _ in range(max(1, warmup)):  # optimizer state exists after the first step
        step()
        progress.advance()
    if device.type == "cuda" and not fake:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        progress.advance()
        return {"peak_mem_bytes": float(torch.cuda.max_memory_allocated(device)),
                "reserved_bytes": float(torch.cuda.max_memory_reserved(device))}
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, step.optimizer)
    with tracker:
        step()
    progress.advance()
    snapshot = tracker.get_tracker_snapshot("peak")
    worst = max(snapshot.values(), key=lambda s: s["Total"])
    out = {"peak_mem_bytes": float(worst["Total"]), "reserved_bytes": math.nan}
    for key, name in MEM_CATEGORIES.items():
        out[f"mem_{name}_bytes"] = float(sum(v for k, v in worst.items()
                                             if getattr(k, "value", k) == key))
    return out


def step_times(step, device: torch.device, steps: int) -> list[float]:
    """Seconds of each of `steps` calls of `step`, the device synchronised around each."""
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median_step_time(step, device: torch.device, steps: int) -> float:
    return statistics.median(step_times(step, device, steps))


def _count_collectives(step) -> dict[str, int]:
    """Collectives one training step issues, counted as they are dispatched."""
    from torch.distributed.tensor.debug import CommDebugMode

    with CommDebugMode() as comm:
        step()
    counts = {str(k): n for k, n in comm.get_comm_counts().items()}
    return {"n_all_gather": sum(n for k, n in counts.items() if "allgather" in k
                                or "all_gather" in k),
            "n_all_reduce": sum(n for k, n in counts.items() if "all_reduce" in k
                                or "allreduce" in k)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_in_process(cases: list[Case], device: torch.device, mode: str, link: Link,
                   warmup: int, steps: int, dtype: torch.dtype, memory_limit: float,
                   on_done=None, progress: Progress | None = None) -> list[dict]:
    """Every case in this process, as rank 0 of a fake process group of its size (modes
    `fake` and `estimate`)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    records = []
    for case in cases:
        dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=case.world)
        try:
            records.append(measure(case, device, mode, link, warmup, steps, dtype,
                                   memory_limit, progress))
        finally:
            dist.destroy_process_group()
        if on_done:
            on_done(records[-1])
    return records


def run_real_rank(arg: tuple) -> list[dict]:
    """What each of tp·dp real ranks runs (gloo or NCCL); rank 0's records are returned,
    with the largest peak memory over the ranks."""
    from pipelines.train.distributed import init_rank, shutdown

    cases, link, warmup, steps, dtype_name, memory_limit = arg
    ctx = init_rank(cases[0].tp, timeout_min=10)
    dtype = getattr(torch, dtype_name)
    records = []
    for case in cases:
        rec = measure(case, ctx.device, "real", link, warmup, steps, dtype, memory_limit)
        for key in ("peak_mem_bytes", "reserved_bytes"):
            mem = torch.tensor([rec.get(key, math.nan)], dtype=torch.float64,
                               device=ctx.device)
            dist.all_reduce(mem, op=dist.ReduceOp.MAX)
            rec[key] = float(mem)
        records.append(rec)
    shutdown()
    return records
