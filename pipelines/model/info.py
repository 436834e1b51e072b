"""Parameter counts per component, without allocating the model.

The model is built on PyTorch's `meta` device, so counting a 26B-parameter model takes
milliseconds. Memory per rank is not estimated by formula here: the memory planner
(`pipelines/bench/planner.py`) runs a real training step on fake tensors instead.
"""

from __future__ import annotations

import torch
from torch import nn

from pipelines.model.config import ModelConfig
from pipelines.model.factory import make_model


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(cfg: ModelConfig, task: str = "mae") -> dict[str, int]:
    with torch.device("meta"):
        model = make_model(cfg, task)
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
