"""bf16 compute at one data-parallel rank without FSDP, and no FSDP gradient copies in
what the memory planner counts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.distributed.fsdp import FSDPModule

from pipelines.bench.case import Case
from pipelines.bench.comm import Link
from pipelines.bench.dchag_bench import run_in_process
from pipelines.model.config import preset_config
from pipelines.model.forecast import Forecaster
from pipelines.train.build import Layout, build_sharded

CPU = torch.device("cpu")


def _model(dtype: torch.dtype, ac: bool = False) -> Forecaster:
    cfg = preset_config("tiny", 8, variant="L", groups=4, img_size=(16, 32), patch=4,
                        out_channels=2)
    layout = Layout(None, None, CPU, compute_dtype=dtype, fsdp=False, ac=ac, ac_channels=ac)
    return build_sharded(lambda: Forecaster(cfg), layout, seed=3)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 8, 16, 32, generator=gen), torch.full((2,), 6.0)


def _shadows(model: torch.nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() for p in m._parameters if p in m.__dict__]


@pytest.mark.parametrize("ac", [False, True])
def test_bf16_without_fsdp_computes_in_bf16_with_fp32_weights_and_gradients(ac):
    """FSDP's arithmetic (every unit's weights cast, the inputs cast) without FSDP: the
    forward equals the model cast to bf16 as a whole, bit for bit; gradients are fp32,
    activation checkpointing recomputes in bf16, and no cast copy outlives the step."""
    model = _model(torch.bfloat16, ac)
    assert not isinstance(model, FSDPModule)
    x, lead = _inputs()
    out = model(x, lead)
    assert _shadows(model)  # the root's copies wait for the backward pass
    whole = copy.deepcopy(_model(torch.float32, ac)).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(out, whole(x.bfloat16(), lead.bfloat16()))
    out.float().pow(2).mean().backward()
    assert not _shadows(model)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 10 and {g.dtype for g in grads} == {torch.float32}
    with torch.no_grad():
        model(x, lead)
    assert not _shadows(model)


def test_fp32_is_left_alone_and_a_failing_forward_leaves_no_copies():
    fp32 = _model(torch.float32)
    assert fp32(*_inputs()).dtype == torch.float32
    model = _model(torch.bfloat16)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 8, 15, 32), torch.full((2,), 6.0))  # not a multiple of the patch
    assert not _shadows(model)


def test_the_planner_counts_one_fp32_gradient_per_parameter_at_dp_1():
    """FSDP at dp 1 held a bf16 gradient and a reduce buffer beside the fp32 one (1.96×
    the fp32 gradients at 1b / 512 channels / tp 8); without it, the fp32 size."""
    link = Link("test", 100.0, 5.0)
    kwargs = dict(device=CPU, link=link, warmup=1, steps=1, dtype=torch.bfloat16,
                  memory_limit=2**36)
    one = run_in_process([Case("small", 64, "L", 0, 2, (32, 64), 4, ac=False,
                               ac_channels=False)], mode="estimate", **kwargs)[0]
    fp32_grads = 4 * one["params_per_rank"]
    assert one["mem_grads_bytes"] <= 1.01 * fp32_grads
