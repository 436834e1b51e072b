"""Distributed D-CHAG on real gloo ranks reproduces the single-process reference exactly:
outputs and every parameter gradient, for L and C, trees 0–2, uneven channel groups, the
pure-TP baseline, and tp = 2 and 4, with exactly one all-gather in the forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from pipelines.model.config import ModelConfig, preset_config
from pipelines.model.layers import never_updated
from pipelines.model.mae import MAE
from pipelines.parallel.tensor_parallel import apply_tensor_parallel
from tests.parallel.ranks import run_ranks

CHANNELS = 14  # groups of 4, 4, 3, 3 channels: an uneven split


def _config(variant: str, tree: int, impl: str = "direct") -> ModelConfig:
    return preset_config("tiny", CHANNELS, variant=variant, tree=tree, groups=4,
                         img_size=(16, 32), patch=4, channel_impl=impl)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, CHANNELS, 16, 32, generator=g), torch.arange(CHANNELS)


def _run(model: MAE, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss, pred, _ = model(x, ids, mask_ratio=0.5, generator=torch.Generator().manual_seed(2))
    loss.backward()
    return loss.detach(), pred.detach()


def _grads(model: MAE) -> dict[str, torch.Tensor | None]:
    out = {}
    for name, p in model.named_parameters():
        g = p.grad
        out[name] = None if g is None else (g.full_tensor() if isinstance(g, DTensor) else g)
    return out


def _worker(rank: int, world: int, variant: str, tree: int, impl: str, state: dict) -> dict:
    model = MAE(_config(variant, tree, impl))
    model.load_state_dict(state)
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
    apply_tensor_parallel(model, mesh)
    gathers = []
    names = [n for n in ("all_gather_into_tensor", "all_gather_single", "all_gather")
             if hasattr(dist, n)]
    originals = {n: getattr(dist, n) for n in names}

    def counting(name):
        def call(*args, **kwargs):
            gathers.append(name)
            return originals[name](*args, **kwargs)
        return call

    for n in names:
        setattr(dist, n, counting(n))
    try:
        loss, pred = _run(model, *_inputs())
    finally:
        for n, fn in originals.items():
            setattr(dist, n, fn)
    return {"loss": loss, "pred": pred, "grads": _grads(model), "gathers": len(gathers)}


GROUP_LOCAL = ("encoder.tokenizers.", "encoder.aggregator.groups.")


@pytest.mark.parametrize(("variant", "tree", "tp", "impl"), [
    ("L", 0, 2, "fused"), ("C", 1, 2, "fused"), ("L", 2, 2, "fused"),
    ("baseline", 0, 2, "fused"), ("L", 1, 4, "fused"), ("C", 2, 4, "fused"),
    ("baseline", 0, 2, "folded"), ("C", 1, 2, "folded"), ("L", 0, 2, "direct")])
def test_distributed_dchag_matches_single_process_reference(tmp_path: Path, variant, tree, tp,
                                                            impl):
    """Every channel implementation on TP ranks against the single-process direct one."""
    torch.manual_seed(0)
    reference = MAE(_config(variant, tree))
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    ref_loss, ref_pred = _run(reference, *_inputs())
    ref_grads = _grads(reference)

    results = run_ranks(_worker, tp, tmp_path, variant, tree, impl, state)
    for r in results:
        torch.testing.assert_close(r["loss"], ref_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r["pred"], ref_pred, rtol=1e-5, atol=1e-5)
        assert r["gathers"] == (0 if variant == "baseline" else 1)
    for name, ref in ref_grads.items():
        if ref is None or never_updated(name):
            continue
        if name.startswith(GROUP_LOCAL) and variant != "baseline":
            # Each group's weights live on exactly one rank, with the reference gradient.
            holders = [r["grads"][name] for r in results if name in r["grads"]]
            assert len(holders) == 1, name
            torch.testing.assert_close(holders[0], ref, rtol=1e-5, atol=1e-6, msg=name)
        else:
            for r in results:
                torch.testing.assert_close(r["grads"][name], ref, rtol=1e-5, atol=1e-6,
                                           msg=name)
