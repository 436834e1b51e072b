"""Model FLOPs of one training step, per tensor-parallel rank and per component.

Counted with `torch.utils.flop_counter` on the meta device (no memory, no compute), module
by module, forward and backward, then each component given the share one rank really does:

- tokenizer: D-CHAG — the channels of the rank's own groups; the baseline — every channel
  (each rank tokenizes all of them);
- channel aggregation: D-CHAG's partials of the rank's own groups, plus the final
  aggregation — over tp when it is head-split, whole when replicated; the baseline's
  all-channel aggregation likewise;
- ViT: attention and MLP over tp (Megatron), norms and residuals on every rank;
- heads (forecast head or MAE decoder, lead embedding, loss): on every rank.

Model FLOPs, as MFU counts them: recomputation by activation checkpointing is not counted.
"""

from __future__ import annotations

import functools
import re

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipelines.model.config import ModelConfig
from pipelines.model.factory import make_model
from pipelines.model.forecast import lat_weighted_mse

# Dense bf16 peak per GPU (vendor data sheets), for MFU.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "MI250X": 191.5e12}
COMPONENTS = ("tokenizer", "channel_agg", "vit", "heads")


def _module_flops(mcfg: ModelConfig, task: str, batch: int, mask_ratio: float
                  ) -> tuple[dict[str, float], str]:
    """FLOPs per module (full names), forward + backward, of the work a step really does.

    torch's module tracker only closes a module's backward once its input gradient is
    computed, so a first layer whose input needs no gradient would collect the backward
    work of every later layer. The input is therefore marked as needing a gradient, and
    the extra work that creates — the tokenization's input gradient, equal to its forward
    — is taken off again (forward counted separately)."""
    with torch.device("meta"):
        h, w = mcfg.img_size
        x = torch.randn(batch, mcfg.channels, h, w, requires_grad=True)
        model = make_model(mcfg, task)
        with FlopCounterMode(display=False) as counter:
            if task == "mae":
                loss = model(x, mask_ratio=mask_ratio,
                             noise=torch.rand(batch, mcfg.num_patches))[0]
            else:
                out = model(x, torch.full((batch,), 24.0))
            forward = _totals(counter)
            if task != "mae":
                loss = lat_weighted_mse(out, x[:, : mcfg.n_out].detach(),
                                        torch.linspace(-87, 87, h))
            loss.backward()
    counts, root = _totals(counter), type(model).__name__
    tokens = batch * (mcfg.num_patches if task != "mae"
                      else max(1, round(mcfg.num_patches * (1 - mask_ratio))))
    _drop_folded_patch_gradients(counts, mcfg, root, tokens)
    enc = f"{root}.encoder"
    pattern = re.compile(rf"^{re.escape(enc)}\.(aggregator\.groups\.\d+|aggregator\.final|"
                         r"aggregator\.full|blocks\.\d+|norm)$")
    inside = [k for k in counts if pattern.match(k)]
    # Tokenization: whatever the encoder does outside those modules (the tokenizers, or
    # D-CHAG-L's one-GEMM partials). Its patch gradient equals its forward.
    forward_tokens = forward.get(enc, 0.0) - sum(forward.get(k, 0.0) for k in inside)
    counts[f"{enc}.<tokens>"] = counts.get(enc, 0.0) - sum(counts[k] for k in inside) - \
        forward_tokens
    for name in (enc, root, "Global"):
        counts[name] = counts.get(name, 0.0) - forward_tokens
    return counts, root


@functools.lru_cache(maxsize=64)
def _whole_model_flops(mcfg: ModelConfig, task: str, batch: int, mask_ratio: float
                       ) -> tuple[dict[str, float], str]:
    """`_module_flops`, counted once per model: the whole model's count does not depend
    on tp (only each rank's share of it does), so a layout search that tries every tp of
    a model runs one counting pass, not one per tp. Read-only: callers must not change
    the dict."""
    return _module_flops(mcfg, task, batch, mask_ratio)


def _drop_folded_patch_gradients(counts: dict[str, float], mcfg: ModelConfig, root: str,
                                 tokens: int) -> None:
    """The folded attention's logits einsum reads the patches directly; its patch gradient
    (as many FLOPs as its forward, 2·N·S·p²·H·Q) exists only in this count."""
    from pipelines.model.aggregate import GroupAggregator, group_bounds

    if mcfg.channel_impl != "folded" or mcfg.variant == "L":
        return
    k, enc = mcfg.patch**2, f"{root}.encoder"
    if mcfg.variant == "baseline":
        extra = {f"{enc}.aggregator.full": 2.0 * tokens * mcfg.channels * k * mcfg.heads}
    else:
        bounds = group_bounds(mcfg)
        extra = {}
        for g in range(mcfg.n_groups):
            size = bounds[g + 1] - bounds[g]
            queries = GroupAggregator(size, mcfg.with_(embed_dim=mcfg.heads)).counts[1]
            extra[f"{enc}.aggregator.groups.{g}"] = 2.0 * tokens * size * k * mcfg.heads * \
                queries
    for name, value in extra.items():
        counts[name] = counts.get(name, 0.0) - value
    total = sum(extra.values())
    for name in (enc, root, "Global"):
        counts[name] = counts.get(name, 0.0) - total


def _totals(counter: FlopCounterMode) -> dict[str, float]:
    return {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}


def rank_flops(mcfg: ModelConfig, task: str, batch: int, mask_ratio: float, tp: int,
               split_aggregation: bool = True) -> dict[str, float]:
    """FLOPs of one step on the busiest tensor-parallel rank, per component (and `total`)."""
    from pipelines.model.aggregate import group_bounds
    from pipelines.parallel.tensor_parallel import owned_groups

    counts, root = _whole_model_flops(mcfg, task, batch, mask_ratio)

    def f(name: str) -> float:
        return counts.get(f"{root}.encoder.{name}", 0.0)

    share = 1 / tp if split_aggregation else 1.0
    vit_split = sum(f(f"blocks.{i}.attn") + f(f"blocks.{i}.mlp") for i in range(mcfg.depth))
    vit_all = sum(f(f"blocks.{i}") for i in range(mcfg.depth)) + f("norm")
    if mcfg.variant == "baseline":  # every rank tokenizes every channel
        tokenizer = f("<tokens>")
        channel_agg = f("aggregator.full") * share
    else:  # tokenization work is proportional to the channels a rank owns
        bounds = group_bounds(mcfg)
        busiest = max((owned_groups(mcfg.n_groups, tp, r) for r in range(tp)),
                      key=lambda mine: sum(bounds[g + 1] - bounds[g] for g in mine))
        owned = sum(bounds[g + 1] - bounds[g] for g in busiest)
        tokenizer = f("<tokens>") * owned / mcfg.channels
        channel_agg = sum(f(f"aggregator.groups.{g}") for g in busiest) + \
            f("aggregator.final") * share
    vit = vit_split / tp + (vit_all - vit_split)
    heads = counts["Global"] - counts[f"{root}.encoder"]
    out = {"tokenizer": tokenizer, "channel_agg": channel_agg, "vit": vit, "heads": heads}
    out["total"] = sum(out.values())
    out["model_total"] = counts["Global"]
    return out


def peak_flops(device: torch.device) -> float | None:
    """The GPU's dense bf16 peak, or None where unknown (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16.items():
        if key in name:
            return value
    return None
