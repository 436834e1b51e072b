"""Memory checked before any rank starts: a run that cannot fit is refused with the numbers
and what to change, instead of ending in the kernel's out-of-memory killer (`worker rank 4
failed: Signal 9`) minutes later.

The estimate per rank is the memory planner's peak for the run's own layout (fake tensors:
nothing is allocated, `pipelines/bench/planner.py`) plus the loader's batches in flight.
CPU ranks share the host: all of them must fit in its available memory. A GPU rank has its
device. A quick bound (inputs and parameters) skips the planner for runs that are clearly
small, so small runs start as fast as before.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from pipelines.errors import DchagError

QUICK_FRACTION = 0.1  # a run whose rough bound is below this share of memory is not planned
HEADROOM = 0.9  # of the available memory, for the interpreter, libraries and page cache


@dataclass(frozen=True)
class MemoryCheck:
    per_rank_bytes: float
    ranks_sharing: int  # ranks that share one pool of memory (the host, or 1 per GPU)
    available_bytes: float
    where: str  # "this host" or "the GPU"
    planned: bool  # the planner ran (False: the quick bound was enough)

    @property
    def needed_bytes(self) -> float:
        return self.per_rank_bytes * self.ranks_sharing

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= HEADROOM * self.available_bytes


def host_available_bytes() -> float:
    """MemAvailable of /proc/meminfo (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _case(cfg, art, batch_per_rank: int):
    from pipelines.bench.case import Case

    return Case(cfg.preset, art.model_channels, cfg.variant, cfg.tree, cfg.tp_size,
                tuple(art.img_size), cfg.patch, batch_per_rank, cfg.dp_size,
                cfg.channel_impl, cfg.aggregation, cfg.ac, cfg.ac_channels, cfg.task,
                cfg.groups, len(art.out_index) if cfg.task == "forecast" else 5)


def _loader_bytes(cfg, art, batch_per_rank: int, itemsize: int) -> float:
    """Input batches alive per rank: the one in use, the next, and each loader worker's
    prefetched ones."""
    h, w = art.full_size
    in_flight = 2 + 2 * cfg.workers
    return float(batch_per_rank * len(art.channel_index) * h * w * itemsize * in_flight)


def check_memory(cfg, art, itemsize: int, gpu: bool) -> MemoryCheck:
    """The run's memory against what this machine has (raises nothing)."""
    batch = max(1, cfg.batch_size // cfg.dp_size)
    loader = _loader_bytes(cfg, art, batch, itemsize)
    if gpu:
        available = float(torch.cuda.get_device_properties(0).total_memory)
        sharing, where = 1, "the GPU"
    else:
        available = host_available_bytes()
        sharing, where = cfg.gpus, "this host"
    case = _case(cfg, art, batch)
    from pipelines.bench.dchag_bench import whole_model_parameters

    params = whole_model_parameters(case)
    # inputs (×8: the channel stage's tokens are larger than the pixels) and fp32 state
    rough = loader + batch * len(art.channel_index) * math.prod(art.img_size) * 4 * 8 + \
        16 * params / (cfg.tp_size * cfg.dp_size)
    if rough * sharing < QUICK_FRACTION * available:
        return MemoryCheck(rough, sharing, available, where, planned=False)
    from pipelines.bench.planner import plan
    from pipelines.train.build import compute_dtype

    dtype = compute_dtype(cfg, torch.device("cuda" if gpu else "cpu"))
    record = plan(case, available / 2**30, dtype)
    return MemoryCheck(float(record["peak_mem_bytes"]) + loader, sharing, available, where,
                       planned=True)


def refuse_if_too_large(check: MemoryCheck, cfg) -> None:
    if check.fits:
        return
    gib = 2**30
    share = (f"{check.ranks_sharing} ranks × {check.per_rank_bytes / gib:.2f} GiB = "
             f"{check.needed_bytes / gib:.1f} GiB" if check.ranks_sharing > 1 else
             f"{check.per_rank_bytes / gib:.2f} GiB per rank")
    fixes = []
    if check.ranks_sharing > 1:
        fixes.append("fewer --gpus (CPU ranks share the host's memory)")
    if cfg.batch_size > cfg.dp_size:
        fixes.append(f"a smaller --batch-size (now {cfg.batch_size})")
    if not cfg.ac:
        fixes.append("--ac --ac-channels (recompute activations in the backward pass)")
    fixes.append("--crop HxW (hyperspectral)" if cfg.task == "mae" and cfg.crop is None
                 else "a smaller --preset")
    if cfg.workers:
        fixes.append(f"fewer --workers (now {cfg.workers}, each holding batches)")
    raise DchagError(
        f"this run needs {share} (memory planner, with the loader's batches) but "
        f"{check.where} has {check.available_bytes / gib:.1f} GiB available",
        fix="; or ".join(fixes) + "; --no-memory-check starts it anyway")
