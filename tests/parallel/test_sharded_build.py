"""Big-model plumbing on real gloo ranks: a model built on the meta device and sharded holds
exactly the single-process model's initial weights, and the clipped global gradient norm
is the single-process one, with TP-replicated weights staying bit-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.distributed.device_mesh import init_device_mesh

from pipelines.model.config import preset_config
from pipelines.model.forecast import Forecaster, lat_weighted_mse
from pipelines.model.mae import MAE
from pipelines.parallel.tensor_parallel import tp_local_names
from pipelines.train.build import Layout, build_sharded
from pipelines.train.optim import build_optimizer, clip_grads
from tests.parallel.ranks import run_ranks

CHANNELS = 14
CPU = torch.device("cpu")


def _cfg(variant: str):
    return preset_config("tiny", CHANNELS, variant=variant, groups=4, img_size=(16, 32),
                         patch=4, out_channels=3)


def _single(variant: str, task: str):
    make = (lambda: MAE(_cfg(variant))) if task == "mae" else (lambda: Forecaster(_cfg(variant)))
    return make, build_sharded(make, Layout(None, None, CPU, fsdp=False), seed=7)


def _full_params(model) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters():
        out[name] = p.full_tensor() if hasattr(p, "full_tensor") else p.detach().clone()
    return out


def _build_worker(rank, world, dp, variant, task):
    mesh = init_device_mesh("cpu", (dp, world // dp), mesh_dim_names=("dp", "tp"))
    make, _ = _single(variant, task)
    model = build_sharded(make, Layout(mesh["tp"], mesh["dp"], CPU, fsdp=True), seed=7)
    return _full_params(model)


@pytest.mark.parametrize(("world", "dp", "variant", "task"), [
    (2, 1, "L", "mae"), (2, 1, "baseline", "forecast"), (4, 2, "C", "forecast")])
def test_meta_built_sharded_model_has_the_single_process_weights(tmp_path: Path, world, dp,
                                                                 variant, task):
    _, reference = _single(variant, task)
    expected = _full_params(reference)
    results = run_ranks(_build_worker, world, tmp_path, dp, variant, task)
    seen = set()
    for params in results:
        for name, value in params.items():
            assert torch.equal(value, expected[name]), name
            seen.add(name)
    assert seen == set(expected)  # every parameter lives on some rank


def _inputs():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, CHANNELS, 16, 32, generator=g) * 50  # large: the clip must act
    y = torch.randn(2, 3, 16, 32, generator=g)
    return x, y, torch.full((2,), 6.0), torch.linspace(-80, 80, 16)


def _step(model, tp_group=None, tp_local=()):
    x, y, lead, lat = _inputs()
    lat_weighted_mse(model(x, lead), y, lat).backward()
    norm = clip_grads(model, 0.5, tp_group, tp_local)
    return norm


def _clip_worker(rank, world, variant):
    mesh = init_device_mesh("cpu", (1, world), mesh_dim_names=("dp", "tp"))
    model = build_sharded(lambda: Forecaster(_cfg(variant)),
                          Layout(mesh["tp"], mesh["dp"], CPU, fsdp=True), seed=7)
    opt = build_optimizer(model, 1e-2, 0.05)
    norms = []
    for _ in range(3):
        norms.append(_step(model, mesh["tp"].get_group(), tp_local_names(model, world)))
        opt.step()
        opt.zero_grad(set_to_none=True)
    local = {n: (p.to_local() if hasattr(p, "to_local") else p).detach().clone()
             for n, p in model.named_parameters()}
    return {"norms": norms, "local": local, "full": _full_params(model)}


@pytest.mark.parametrize("variant", ["L", "baseline"])
def test_clipping_under_tp_uses_the_true_global_norm(tmp_path: Path, variant):
    _, reference = _single(variant, "forecast")
    opt = build_optimizer(reference, 1e-2, 0.05)
    ref_norms = []
    for _ in range(3):
        ref_norms.append(_step(reference))
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert min(ref_norms) > 5 * 0.5  # clipping was active at every step
    results = run_ranks(_clip_worker, 2, tmp_path, variant)
    expected = _full_params(reference)
    for r in results:
        assert r["norms"] == pytest.approx(ref_norms, rel=1e-5)
        # AdamW turns a float-rounding difference in a near-zero gradient into up to a
        # whole step (lr 1e-2) of difference: 1e-4 is 1 % of one, far below what a wrong
        # norm or a missing gradient does (the norms above are the sharp check)
        for name, value in r["full"].items():
            torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-4, msg=name)
    a, b = (r["local"] for r in results)
    replicated = [n for n in a if n in b and a[n].shape == b[n].shape
                  and not n.startswith(("encoder.blocks", "encoder.aggregator.final",
                                        "encoder.aggregator.full"))]
    assert replicated
    for name in replicated:  # TP-replicated weights: bit-identical on every rank
        assert torch.equal(a[name], b[name]), name


def _foreach_worker(rank, world, fsdp):
    mesh = init_device_mesh("cpu", (1, world), mesh_dim_names=("dp", "tp"))
    model = build_sharded(lambda: Forecaster(_cfg("L")),
                          Layout(mesh["tp"], mesh["dp"], CPU, fsdp=fsdp), seed=7)
    opt = build_optimizer(model, 1e-2, 0.05, foreach=True)  # CUDA's default
    _step(model)
    opt.step()
    return {n: p.detach() for n, p in model.named_parameters() if not hasattr(p, "to_local")}


@pytest.mark.parametrize("fsdp", [True, False])
def test_adamw_foreach_steps_with_tensor_parallel_parameters(tmp_path: Path, fsdp):
    """Plain tensors beside DTensors used to crash `_foreach_mul_` (CUDA's default)."""
    results = run_ranks(_foreach_worker, 2, tmp_path, fsdp)
    assert len(results) == 2
    if not fsdp:
        assert results[0]  # the mix of plain tensors and DTensors really happened
