"""After a training step no gradient buffer stays alive into the next one: the key biases
the optimizer never updates still receive gradients, and only the model can free them."""

from __future__ import annotations

import torch
import torch.distributed as dist

from pipelines.bench.case import Case
from pipelines.bench.dchag_bench import training_step


def test_a_step_under_fsdp_frees_every_gradient_the_optimizer_does_not_own():
    from torch.testing._internal.distributed.fake_pg import FakeStore

    case = Case("tiny", 16, "L", 0, 1, (16, 16), 4, dp=2, batch=2, task="mae")
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=case.world)
    try:
        model, step = training_step(case, torch.device("cpu"), torch.float32, fake=False)
        owned = {id(p) for g in step.optimizer.param_groups for p in g["params"]}
        keys = [p for n, p in model.named_parameters() if n.endswith(".k.bias")]
        assert keys and not any(id(p) in owned for p in keys)  # what the test is about
        step()
        alive = [n for n, p in model.named_parameters() if p.grad is not None]
        assert alive == []
    finally:
        dist.destroy_process_group()
