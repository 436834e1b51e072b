"""Run a function on N real torch.distributed gloo processes and collect their results.

The processes are forked from the rank server `dchag --gpus N` uses (`rank_server.py`),
which has imported torch and the model code already: a spawned process would spend about
two CPU-seconds importing them again, for every rank of every test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipelines.train.distributed import free_port
from pipelines.train.rank_server import RankStart, enter_rank, rank_server

# What the rank functions need, imported once in the fork server (names it cannot import
# are skipped by multiprocessing, so this list only saves time, it never changes results).
_PRELOAD = ["torch", "torch.distributed.tensor", "torch.distributed.fsdp", "pytest",
            "pipelines.model.forecast", "pipelines.model.mae", "pipelines.train.build",
            "pipelines.train.optim", "pipelines.parallel.tensor_parallel",
            "pipelines.parallel.fsdp"]


def _entry(rank: int, world: int, port: int, fn: Callable, args: tuple, out: str,
           start: RankStart) -> None:
    enter_rank(start)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = fn(rank, world, *args)
        torch.save(result, Path(out) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(fn: Callable, world: int, tmp: Path, *args: Any) -> list[Any]:
    """fn(rank, world, *args) on `world` processes; returns each rank's result."""
    with rank_server(_PRELOAD) as start:
        mp.start_processes(_entry, args=(world, free_port(), fn, args, str(tmp), start),
                           nprocs=world, join=True, start_method="forkserver")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(world)]
