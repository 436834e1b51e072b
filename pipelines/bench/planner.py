"""The memory planner: a training step's per-rank peak without allocating anything.

One step (after a warm-up step, so optimizer state exists) runs on fake tensors against
torch's fake process group, laid out exactly as training lays it out, and torch's
`MemTracker` follows every tensor it would allocate. The same code path measured with
real tensors gives the same peak (tested), so the plan is the measurement a CPU could
make if it had the memory. A 1.7B / 1024-channel / tp-8 case takes about half a minute
on two CPU cores.
"""

from __future__ import annotations

import torch

from pipelines.bench.case import Case
from pipelines.bench.comm import Link
from pipelines.bench.dchag_bench import run_in_process
from pipelines.progress import Progress

PLANNER_LINK = Link("not modelled", 100.0, 0.0)


def plan(case: Case, memory_limit_gib: float = 64.0, dtype: torch.dtype = torch.bfloat16,
         progress: Progress | None = None) -> dict:
    """The planner's record for one case (peak_mem_bytes, mem_* breakdown, FLOPs, fits);
    `progress` hears of the model laid out and of each step traced."""
    return run_in_process([case], torch.device("cpu"), "estimate", PLANNER_LINK, 1, 1,
                          dtype, memory_limit_gib * 2**30, progress=progress)[0]
