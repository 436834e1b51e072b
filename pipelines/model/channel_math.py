"""Exact shortcuts through the channel stage: the same function, far less work.

Channel tokens are affine in the patches: token_s = p_s W_s + c_s (p_s the p² pixels of
channel s, W_s its patch embedding, c_s its bias plus channel embedding). Two things that
follow from it:

- **D-CHAG-L is one matrix product.** A partial is a weighted sum of its group's tokens
  through any number of tree levels, Σ_s α_s token_s + β with α, β folded from the levels'
  weights and biases, so it equals patches (N, s·p²) @ W̃ (s·p², D) with W̃_s = α_s W_s, plus
  Σ_s α_s c_s + β. The (N, s, D) tokens never exist.

- **A learned-query attention over channel tokens needs no tokens** (`FoldedTokens`). With
  u_hq = W_k^hᵀ q_hq (the key-free form of `QueryAttention`), the logit of channel s is
  p_s · (W_s u_hq) + c_s · u_hq — a p²-long dot product — and the pooled input is
  Σ_s w_hqs token_s = (w_hq ⊙ p) @ W + w_hq @ c, one matrix product with the tokenizer's
  weights. Instead of an (N, S, D) token tensor (and its gradient) it keeps an
  (N, H·Q, S·p²) one — smaller whenever heads·p² < D — at H times the tokenizer's
  multiply-adds. It is offered as the `folded` implementation; the bench reports it beside
  `fused` (tokens kept, no keys or values) so the strongest baseline is always the one
  compared against.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class FoldedTokens(NamedTuple):
    """Channel tokens token_s = p_s W_s + c_s, never materialised. A named tuple, so that
    torch's module trackers (FLOP counter, MemTracker) see the tensors inside."""

    patches: Tensor  # (..., S, p²): (B, L, S, p²), or (N, S, p²) once flattened
    weight: Tensor  # (S, p², D)
    bias: Tensor  # (S, D): patch-embedding bias + channel embedding
    blocks: list[tuple[int, int]] | None = None  # each query's contiguous member range

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.patches.shape[:-1], self.weight.shape[-1])

    def materialise(self) -> Tensor:
        return torch.einsum("...sk,skd->...sd", self.patches, self.weight) + self.bias


def linear_partial(patches: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor,
                   beta: Tensor) -> Tensor:
    """D-CHAG-L's partial of one group as one GEMM: patches (B, L, s, p²), weights
    (s, p², D), biases (s, D), folded mixing α (s,) and bias β (D,) → (B, L, D)."""
    b, length, s, k = patches.shape
    w = (alpha[:, None, None].to(weight.dtype) * weight).reshape(s * k, weight.shape[-1])
    return patches.reshape(b, length, s * k) @ w.to(patches.dtype) + (alpha @ bias + beta)


def folded_logits(tokens: FoldedTokens, u: Tensor) -> Tensor:
    """Logits x_s · u_hq (N, H, Q, S) of the folded tokens, u (H, Q, D)."""
    v = torch.einsum("skd,hqd->skhq", tokens.weight, u.to(tokens.weight.dtype))
    logits = torch.einsum("nsk,skhq->nhqs", tokens.patches, v.to(tokens.patches.dtype))
    return logits + torch.einsum("sd,hqd->hqs", tokens.bias, u.to(tokens.bias.dtype))[None]


def folded_pool(tokens: FoldedTokens, w: Tensor) -> Tensor:
    """Σ_s w_hqs token_s (N, H, Q, D) for weights w (N, H, Q, S), block by block when each
    query attends a contiguous range of channels."""
    n, h, q, s = w.shape
    p = tokens.patches
    k = p.shape[-1]
    blocks = tokens.blocks or [(0, s)] * q  # no blocks: every query may see every channel
    out = []
    for j, (lo, hi) in enumerate(blocks):
        a = (w[:, :, j, lo:hi, None] * p[:, None, lo:hi]).reshape(n, h, (hi - lo) * k)
        weight = tokens.weight[lo:hi].reshape((hi - lo) * k, -1).to(a.dtype)
        out.append(a @ weight + w[:, :, j, lo:hi] @ tokens.bias[lo:hi].to(a.dtype))
    return torch.stack(out, dim=2)
