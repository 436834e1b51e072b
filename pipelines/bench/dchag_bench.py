"""Per-rank memory and step throughput of D-CHAG against the pure-TP baseline.

The protocol of the D-CHAG authors' benchmark: synthetic data, forward + backward + AdamW
step of the forecasting model (ClimaX-style: every patch of every channel tokenized),
batch 2 per rank, medians over timed steps after warm-up.

Two ways to run a tensor-parallel group of size tp:
- `real`: tp processes (gloo on CPU, NCCL on GPUs), communication included.
- `fake`: rank 0 alone against torch's fake process group — every TP rank does the same
  work, so rank 0's memory and compute are every rank's. Collectives return at once;
  their time is *modelled* as bytes / `link_gbs` and labelled so. This is how one GPU
  measures tp = 8.
Memory: the CUDA allocator's peak on GPUs; on CPUs torch's `MemTracker` (which follows
every tensor the step allocates), both after a warm-up step so optimizer state counts.
Collectives of one step are counted with `CommDebugMode`; their bytes follow the ring
formulas of `comm_bytes`.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from pipelines.model.config import ModelConfig, preset_config
from pipelines.model.forecast import Forecaster, lat_weighted_mse
from pipelines.parallel.tensor_parallel import apply_tensor_parallel
from pipelines.train.flops import peak_flops, step_flops

N_OUT = 5  # forecast outputs, as in the authors' ERA5 model


@dataclass(frozen=True)
class Case:
    preset: str
    channels: int
    variant: str
    tree: int
    tp: int
    img: tuple[int, int]
    patch: int
    batch: int = 2

    def model_config(self) -> ModelConfig:
        groups = max(8, self.tp) if self.variant != "baseline" else None
        return preset_config(self.preset, self.channels, variant=self.variant, tree=self.tree,
                             groups=min(groups, self.channels) if groups else None,
                             img_size=self.img, patch=self.patch, out_channels=N_OUT)


def comm_bytes(cfg: ModelConfig, tp: int, batch: int, elem_bytes: int) -> dict[str, float]:
    """Bytes one rank sends per step (ring collectives): the D-CHAG all-gather of partials
    (forward only) and the TP ViT's all-reduces (2 per block forward, 2 backward)."""
    if tp == 1:
        return {"gather": 0.0, "tp_allreduce": 0.0}
    tokens = batch * cfg.num_patches
    gather = 0.0 if cfg.variant == "baseline" else (
        tokens * cfg.n_groups * cfg.embed_dim * (tp - 1) / tp * elem_bytes)
    allreduce = cfg.depth * 4 * 2 * (tp - 1) / tp * tokens * cfg.embed_dim * elem_bytes
    return {"gather": gather, "tp_allreduce": allreduce}


def measure(*args, **kwargs) -> dict:
    """One case on this rank (the process group, real or fake, has world size tp)."""
    with warnings.catch_warnings():
        # Module hooks of the memory and collective trackers fire on outputs when the
        # inputs need no gradient (synthetic data): expected, and harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        return _measure(*args, **kwargs)


def _measure(case: Case, device: torch.device, mode: str, warmup: int, steps: int,
            link_gbs: float, dtype: torch.dtype) -> dict:
    _free(device)  # the previous case's tensors are gone by now (after an OOM too)
    cfg = case.model_config()
    torch.manual_seed(0)
    record = {**asdict(case), "img": f"{case.img[0]}x{case.img[1]}", "mode": mode,
              "device": _device_name(device), "dtype": str(dtype).removeprefix("torch."),
              "groups": cfg.n_groups, "tokens": cfg.num_patches}
    try:
        with torch.device(device):
            model = Forecaster(cfg).to(dtype)
        record["params"] = sum(p.numel() for p in model.parameters())
        if case.tp > 1:
            mesh = init_device_mesh(device.type, (case.tp,), mesh_dim_names=("tp",))
            apply_tensor_parallel(model, mesh)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        h, w = case.img
        gen = torch.Generator(device=device).manual_seed(1)
        x = torch.randn(case.batch, case.channels, h, w, device=device, generator=gen,
                        dtype=dtype)
        y = torch.randn(case.batch, N_OUT, h, w, device=device, generator=gen, dtype=dtype)
        lead = torch.full((case.batch,), 24.0, device=device, dtype=dtype)
        lat = torch.linspace(-87.0, 87.0, h, device=device)

        def step() -> None:
            lat_weighted_mse(model(x, lead), y, lat).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        record["peak_mem_bytes"] = _peak_memory(step, model, opt, device, warmup)
        times = []
        for _ in range(steps):
            _sync(device)
            t0 = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - t0)
        record.update(_count_collectives(step), fits=True)
    except torch.OutOfMemoryError:
        record.update(fits=False, peak_mem_bytes=float("nan"), step_s=float("nan"))
        _free(device)
        return record
    compute = statistics.median(times)
    sent = comm_bytes(cfg, case.tp, case.batch, torch.finfo(dtype).bits // 8)
    modelled = mode == "fake" and case.tp > 1
    comm_s = sum(sent.values()) / (link_gbs * 1e9) if modelled else 0.0
    step_s = compute + comm_s
    flops = step_flops(cfg, "forecast", case.batch, 0.0) / case.tp
    peak = peak_flops(device)
    record.update(step_s=step_s, compute_s=compute, comm_s_modelled=comm_s,
                  comm_gather_bytes=sent["gather"], comm_allreduce_bytes=sent["tp_allreduce"],
                  samples_per_s=case.batch / step_s,
                  tokens_per_s=case.batch * cfg.num_patches * case.channels / step_s,
                  tflops_per_rank=flops / compute / 1e12,
                  mfu=flops / compute / peak if peak else float("nan"))
    return record


def _peak_memory(step, model, opt, device: torch.device, warmup: int) -> float:
    for _ in range(max(1, warmup)):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device))
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        step()
    snapshot = tracker.get_tracker_snapshot("peak")
    return float(max(s["Total"] for s in snapshot.values()))


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


def run_fake(cases: list[Case], device: torch.device, warmup: int, steps: int,
             link_gbs: float, dtype: torch.dtype, on_done=None) -> list[dict]:
    """Every case in this process, as rank 0 of a fake TP group of its size."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    records = []
    for case in cases:
        dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=case.tp)
        try:
            records.append(measure(case, device, "fake", warmup, steps, link_gbs, dtype))
        finally:
            dist.destroy_process_group()
        if on_done:
            on_done(records[-1])
    return records


def run_real_rank(arg: tuple[list[Case], int, int, float, str]) -> list[dict]:
    """What each of tp real ranks runs (gloo or NCCL); rank 0's records are returned,
    with the largest peak memory over the ranks."""
    from pipelines.train.distributed import init_rank, shutdown

    cases, warmup, steps, link_gbs, dtype_name = arg
    ctx = init_rank(cases[0].tp, timeout_min=10)
    dtype = getattr(torch, dtype_name)
    records = []
    for case in cases:
        rec = measure(case, ctx.device, "real", warmup, steps, link_gbs, dtype)
        mem = torch.tensor([rec["peak_mem_bytes"]], dtype=torch.float64, device=ctx.device)
        dist.all_reduce(mem, op=dist.ReduceOp.MAX)
        rec["peak_mem_bytes"] = float(mem)
        records.append(rec)
    shutdown()
    return records
