"""Parameter counts and a per-rank memory estimate, without allocating the model.

The model is built on PyTorch's `meta` device, so counting a 26B-parameter model takes
milliseconds. Activation estimates count the tensors a training step keeps for
backward, in `bytes_per_value` (2 for bf16), per tensor-parallel rank:

- tokenizer: patches and tokens of the channels the rank tokenizes, B·L·c·(p² + D)
  (c = C for the pure-TP baseline, ≈ C/tp with D-CHAG);
- aggregation: baseline: k and v of all C channel tokens plus attention weights,
  B·L·C·(2D + H); D-CHAG-L: B·L·(partials)·D per level; D-CHAG-C: k and v of the local
  channels plus attention weights, then small tree levels; final: k, v of the G gathered
  partials;
- ViT: B·L·D·(10 + 24/tp) per block (Korthikanti et al. 2022, tensor parallel without
  sequence parallelism, attention weights recomputed by fused attention);
- optimizer: 16 bytes per parameter held (fp32 master, grad and two AdamW moments); ViT
  and final-aggregation weights are split over tp ranks, the tokenizer and partial
  aggregators are split by channel group with D-CHAG and replicated in the baseline.

They are estimates for planning; `dchag bench memory` measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pipelines.model.aggregate import split_even
from pipelines.model.config import ModelConfig
from pipelines.model.forecast import Forecaster
from pipelines.model.mae import MAE


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(cfg: ModelConfig, task: str = "mae") -> dict[str, int]:
    with torch.device("meta"):
        model = MAE(cfg) if task == "mae" else Forecaster(cfg)
    enc = model.encoder
    agg = enc.aggregator
    counts = {
        "tokenizer": count(enc.tokenizers),
        "partial aggregation": count(agg.groups) if cfg.variant != "baseline" else 0,
        "final aggregation": count(agg.final) if cfg.variant != "baseline" else count(agg.full),
        "vit blocks": count(enc.blocks) + count(enc.norm),
    }
    counts["head" if task != "mae" else "decoder"] = count(model) - sum(counts.values())
    counts["total"] = count(model)
    return counts


@dataclass
class MemoryEstimate:
    params: dict[str, float]  # parameters held per rank
    activations_gb: dict[str, float]
    optimizer_gb: float

    @property
    def total_gb(self) -> float:
        return sum(self.activations_gb.values()) + self.optimizer_gb


def estimate_memory(cfg: ModelConfig, batch: int, tp: int = 1, task: str = "mae",
                    mask_ratio: float = 0.75, bytes_per_value: int = 2) -> MemoryEstimate:
    counts = parameter_counts(cfg, task)
    length = cfg.num_patches if task != "mae" else max(1, round(cfg.num_patches *
                                                                (1 - mask_ratio)))
    b, d, h, p2 = batch, cfg.embed_dim, cfg.heads, cfg.patch**2
    g = cfg.n_groups
    baseline = cfg.variant == "baseline"
    local_groups = math.ceil(g / tp)
    bounds = split_even(cfg.channels, g)
    c_local = cfg.channels if baseline else max(
        bounds[i + 1] - bounds[i] for i in range(g)) * local_groups
    act = {"tokenizer": b * length * c_local * (p2 + d)}
    if baseline:
        act["aggregation"] = b * length * cfg.channels * (2 * d + h) + 2 * b * length * d
    else:
        per_level = b * length * local_groups * (cfg.tree_fanout**cfg.tree) * d
        if cfg.variant == "C":
            partial = b * length * c_local * (2 * d + h) + (cfg.tree + 1) * per_level
        else:
            partial = (cfg.tree + 1) * per_level
        final = b * length * g * (3 * d + h) + 2 * b * length * d
        act["aggregation"] = partial + final
    act["vit"] = cfg.depth * b * length * d * (10 + 24 / tp)
    if task == "mae":
        act["decoder"] = cfg.decoder_depth * b * cfg.num_patches * cfg.decoder_dim * 34 + (
            b * cfg.num_patches * cfg.channels * p2 * 2)
    else:
        act["head"] = b * cfg.num_patches * (2 * d + cfg.n_out * p2)
    act_gb = {k: v * bytes_per_value / 2**30 for k, v in act.items()}
    split_by_group = 1 if baseline else tp
    held = {
        "tokenizer": counts["tokenizer"] / split_by_group,
        "aggregation": counts["partial aggregation"] / split_by_group
        + counts["final aggregation"] / tp,
        "vit": counts["vit blocks"] / tp,
        "rest": (counts["total"] - counts["tokenizer"] - counts["partial aggregation"]
                 - counts["final aggregation"] - counts["vit blocks"]),
    }
    return MemoryEstimate(params=held, activations_gb=act_gb,
                          optimizer_gb=sum(held.values()) * 16 / 2**30)
