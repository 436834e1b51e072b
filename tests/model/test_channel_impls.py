"""The fused and folded channel stages compute exactly what the direct one does: outputs
and every trained parameter's gradient, for the baseline, L and C, trees 0–2, channel
subsets and MAE's visible-patch path. Same parameters, so checkpoints are shared."""

from __future__ import annotations

import pytest
import torch

from pipelines.model.config import preset_config
from pipelines.model.forecast import Forecaster
from pipelines.model.layers import never_updated
from pipelines.model.mae import MAE

SUBSET = torch.tensor([0, 2, 3, 5, 6, 9, 10, 13])
CASES = [(v, t) for v in ("baseline", "L", "C") for t in ((0,) if v == "baseline" else (0, 1, 2))]


def _run(variant, tree, impl, dtype, ids, state=None):
    cfg = preset_config("tiny", 14, variant=variant, tree=tree, groups=4, img_size=(16, 32),
                        patch=4, channel_impl=impl)
    torch.manual_seed(0)
    model = MAE(cfg).to(dtype)
    if state is not None:
        model.load_state_dict(state)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 14 if ids is None else len(ids), 16, 32, generator=g, dtype=dtype)
    loss, pred, _ = model(x, ids, mask_ratio=0.5, generator=torch.Generator().manual_seed(2))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None and not never_updated(n)}
    return model.state_dict(), pred.detach(), grads


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("subset", [False, True], ids=["all channels", "channel subset"])
@pytest.mark.parametrize(("variant", "tree"), CASES)
def test_fused_and_folded_equal_direct(variant, tree, subset, dtype, tol):
    ids = SUBSET if subset else None
    state, ref_pred, ref_grads = _run(variant, tree, "direct", dtype, ids)
    for impl in ("fused", "folded"):
        _, pred, grads = _run(variant, tree, impl, dtype, ids, state)
        assert set(grads) == set(ref_grads), impl
        torch.testing.assert_close(pred, ref_pred, rtol=tol,
                                   atol=tol * ref_pred.abs().max().item())
        scale = max(g.abs().max().item() for g in ref_grads.values())
        for name, ref in ref_grads.items():
            torch.testing.assert_close(grads[name], ref, rtol=tol, atol=tol * scale,
                                       msg=f"{impl}: {name}")


def test_checkpoints_load_across_implementations():
    cfg = preset_config("tiny", 14, variant="C", tree=1, groups=4, img_size=(16, 32))
    names = {impl: set(Forecaster(cfg.with_(channel_impl=impl)).state_dict())
             for impl in ("direct", "fused", "folded")}
    assert names["direct"] == names["fused"] == names["folded"]


@pytest.mark.parametrize("variant", ["baseline", "C"])
def test_checkpointing_the_channel_stage_changes_nothing_but_memory(variant):
    cfg = preset_config("tiny", 14, variant=variant, groups=4, img_size=(16, 32))
    results = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = Forecaster(cfg).double()
        model.encoder.checkpoint_channels = ckpt
        x = torch.randn(2, 14, 16, 32, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
        model(x, torch.full((2,), 6.0, dtype=torch.float64)).square().mean().backward()
        results.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    for name, grad in results[0].items():
        torch.testing.assert_close(results[1][name], grad, rtol=1e-12, atol=1e-14)
