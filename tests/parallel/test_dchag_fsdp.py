"""D-CHAG on a (dp=2, tp=2) mesh — FSDP over dp, tensor parallel over tp — computes the
same loss and gradients as one process on the whole batch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from pipelines.model.config import preset_config
from pipelines.model.mae import MAE
from pipelines.parallel.fsdp import apply_fsdp
from pipelines.parallel.tensor_parallel import apply_tensor_parallel
from tests.parallel.ranks import run_ranks

CFG = preset_config("tiny", 10, variant="L", tree=1, groups=4, img_size=(16, 32), patch=4)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(4, 10, 16, 32, generator=g), torch.rand(4, CFG.num_patches, generator=g)


def _grads(model: MAE) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else (p.grad.full_tensor() if isinstance(p.grad, DTensor)
                                           else p.grad)
            for n, p in model.named_parameters()}


def _worker(rank: int, world: int, state: dict) -> dict:
    model = MAE(CFG)
    model.load_state_dict(state)
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    apply_tensor_parallel(model, mesh["tp"])
    apply_fsdp(model, mesh["dp"])
    x, noise = _batch()
    dp = mesh["dp"].get_local_rank()
    part = slice(2 * dp, 2 * dp + 2)
    loss, _, _ = model(x[part], mask_ratio=0.5, noise=noise[part])
    loss.backward()
    return {"dp": dp, "loss": loss.detach(), "grads": _grads(model)}


def test_fsdp_times_tensor_parallel_matches_the_whole_batch_reference(tmp_path: Path):
    torch.manual_seed(0)
    reference = MAE(CFG)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    x, noise = _batch()
    ref_loss, _, _ = reference(x, mask_ratio=0.5, noise=noise)
    ref_loss.backward()
    ref = _grads(reference)

    results = run_ranks(_worker, 4, tmp_path, state)
    losses = {r["dp"]: r["loss"] for r in results}
    torch.testing.assert_close((losses[0] + losses[1]) / 2, ref_loss.detach(), rtol=1e-5,
                               atol=1e-6)
    group_local = ("encoder.tokenizers.", "encoder.aggregator.groups.")
    for name, want in ref.items():
        if name.startswith(group_local):  # held by one tp rank (in each dp replica)
            holders = [r["grads"][name] for r in results if name in r["grads"]]
            assert len(holders) == 2, name
            for got in holders:
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)
        else:
            for r in results:
                torch.testing.assert_close(r["grads"][name], want, rtol=1e-5, atol=1e-6,
                                           msg=name)
