"""Communication of one training step, per rank: what is sent, and a time model.

Ring collectives over p ranks: an all-reduce of n bytes takes 2(p−1) steps and sends
2(p−1)/p · n; an all-gather or reduce-scatter (p−1) steps and (p−1)/p · n. The time model
is α per step plus bytes over the link's bandwidth β — stated with the link it assumes,
and used only where communication is not measured (fake and estimate modes).

Per step of the forecasting model, per tensor-parallel group:
- D-CHAG's one all-gather of the partials, B·L·G·D values (forward only);
- a head-split aggregation: one all-reduce of its output B·L·D (forward) and one of its
  input gradient (backward) — B·L·G·D for D-CHAG's final aggregation, B·L·C·D for the
  baseline's aggregation over all channel tokens (the `folded` baseline has no tokens: it
  all-reduces its tokenizer's weight gradients instead, C·(p²+1)·D);
- the Megatron ViT: two all-reduces of B·L·D per block in each direction, and one more
  per block when activation checkpointing recomputes the forward;
and over data parallelism (FSDP): the parameters all-gathered in the forward and again
in the backward (compute dtype), the gradients reduce-scattered (fp32).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.bench.case import Case


@dataclass(frozen=True)
class Link:
    name: str
    gbs: float  # GB/s per direction
    latency_us: float  # per ring step

    def seconds(self, steps: int, sent_bytes: float) -> float:
        return steps * self.latency_us * 1e-6 + sent_bytes / (self.gbs * 1e9)

    def describe(self) -> str:
        return f"{self.name}: {self.gbs:g} GB/s, {self.latency_us:g} µs per ring step"


def _all_reduce(n_bytes: float, p: int) -> tuple[int, float]:
    return (2 * (p - 1), 2 * (p - 1) / p * n_bytes) if p > 1 else (0, 0.0)


def _gather(n_bytes: float, p: int) -> tuple[int, float]:
    return (p - 1, (p - 1) / p * n_bytes) if p > 1 else (0, 0.0)


def step_comm(case: Case, elem_bytes: int, params_per_rank: float, link: Link
              ) -> dict[str, float]:
    """Bytes one rank sends per step, per kind, and the modelled seconds."""
    cfg = case.model_config()
    tp, dp = case.tp, case.dp
    tokens = case.batch * cfg.num_patches
    d = cfg.embed_dim
    parts: dict[str, tuple[int, float]] = {}
    if case.variant != "baseline":
        parts["gather"] = _gather(tokens * cfg.n_groups * d * elem_bytes, tp)
    if case.aggregation == "head-split":
        if case.variant != "baseline":
            grad = tokens * cfg.n_groups * d
        elif case.channel_impl == "folded":
            grad = cfg.channels * (cfg.patch**2 + 1) * d
        else:
            grad = tokens * cfg.channels * d
        fwd = _all_reduce(tokens * d * elem_bytes, tp)
        bwd = _all_reduce(grad * elem_bytes, tp)
        parts["aggregation"] = (fwd[0] + bwd[0], fwd[1] + bwd[1])
    steps, sent = _all_reduce(tokens * d * elem_bytes, tp)
    # two all-reduces per block forward and two backward; activation checkpointing
    # recomputes the forward up to the attention output's all-reduce (the block's last one
    # is not needed again): one more per block, as the bench counts them
    per_block = 5 if case.ac else 4
    parts["vit"] = (per_block * cfg.depth * steps, per_block * cfg.depth * sent)
    gather_steps, gathered = _gather(params_per_rank * dp * elem_bytes, dp)
    scatter_steps, scattered = _gather(params_per_rank * dp * 4, dp)
    parts["fsdp"] = (2 * gather_steps + scatter_steps, 2 * gathered + scattered)
    out = {f"comm_{k}_bytes": v[1] for k, v in parts.items()}
    out["comm_bytes"] = sum(v[1] for v in parts.values())
    out["comm_s_modelled"] = sum(link.seconds(*v) for v in parts.values())
    return out
