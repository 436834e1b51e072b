"""Transformer building blocks, written so tensor parallelism can shard them unchanged.

q, k, v and fc1 are separate `nn.Linear`s (column-splittable: each rank keeps whole heads);
proj and fc2 are row-splittable. Attention infers the number of heads from the width of
its q projection, so a column-sharded layer simply runs with its local heads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.model.channel_math import FoldedTokens, folded_logits, folded_pool


def sincos_2d(dim: int, grid: tuple[int, int]) -> Tensor:
    """Fixed 2-D sine-cosine position embedding (L, dim), as in MAE."""
    if dim % 4:
        raise ValueError(f"position embedding dim {dim} must be divisible by 4")
    gh, gw = grid
    yy, xx = torch.meshgrid(torch.arange(gh, dtype=torch.float64),
                            torch.arange(gw, dtype=torch.float64), indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    parts = []
    for pos in (yy.flatten(), xx.flatten()):
        out = pos[:, None] * omega[None, :]
        parts += [torch.sin(out), torch.cos(out)]
    return torch.cat(parts, dim=1).float()


class Attention(nn.Module):
    """Multi-head self-attention over tokens (N, L, D)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)  # its bias is never updated: see `never_updated`
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, _ = x.shape
        q, k, v = self.q(x), self.k(x), self.v(x)
        heads = q.shape[-1] // self.head_dim  # local heads under tensor parallelism

        def split(t: Tensor) -> Tensor:
            return t.view(n, length, heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return self.proj(out.transpose(1, 2).reshape(n, length, heads * self.head_dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def never_updated(name: str) -> bool:
    """Key biases: q·b_k adds the same constant to every logit of a query, so it cancels in
    the softmax and its true gradient is zero; Adam would only turn rounding noise into
    ±lr steps (different on every layout). They keep their names and values, unchanged."""
    return name.endswith(".k.bias")


def local(p: Tensor) -> Tensor:
    """A parameter's local values: its shard when tensor parallelism made it a DTensor."""
    to_local = getattr(p, "to_local", None)
    return to_local() if to_local is not None else p


def _identity(x: Tensor) -> Tensor:
    return x


class QueryAttention(nn.Module):
    """Cross-attention from learned queries to a set of tokens (channel aggregation).

    tokens (N, S, D) → (N, Q, D), one output per learned query. `allowed` (Q, S) restricts
    each query to its members (a tree's sub-groups); `present` inputs are expressed the
    same way. A query with no allowed input returns the projection of zero (its bias).

    Exact implementations (`impl`):
    - `direct`: project every input to keys and values, then attend (through
      `scaled_dot_product_attention`) — 2·S·D² multiply-adds
      per location and (N, S, D) key and value tensors kept for the backward pass.
    - `fused` (default): the query is a parameter, so for head h the logit of input x_s is
      q_h·(W_k^h x_s + b_k^h) = x_s·u_h + const with u_h = W_k^hᵀ q_h (the constant cancels
      in the softmax), and the weighted values are W_v^h (Σ_s w_hs x_s) + b_v^h because the
      weights sum to one. About S·H·D + D² multiply-adds per location (≈ D/H times fewer)
      and no (N, S, D) key or value tensor.
    - given `FoldedTokens` (channel tokens as patches and tokenizer weights, the `folded`
      implementation), the fused form runs without the tokens themselves: see
      `channel_math`.

    Head-split tensor parallelism: the engine shards q, k, v by heads and proj by rows and
    sets `enter`/`leave` to the two Megatron collectives; this code then runs on its local
    heads unchanged.
    """

    def __init__(self, dim: int, heads: int, n_queries: int = 1, impl: str = "fused"):
        super().__init__()
        if impl not in ("fused", "direct", "folded"):
            raise ValueError(f"unknown channel implementation {impl!r}")
        self.head_dim = dim // heads
        self.impl = impl
        self.query = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        self.k = nn.Linear(dim, dim)  # its bias is never updated: see `never_updated`
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.enter: Callable[[Tensor], Tensor] = _identity
        self.leave: Callable[[Tensor], Tensor] = _identity

    def forward(self, x: Tensor | FoldedTokens, allowed: Tensor | None = None) -> Tensor:
        query = local(self.query)
        wk, bk = local(self.k.weight), local(self.k.bias)
        wv, bv = local(self.v.weight), local(self.v.bias)
        heads = wk.shape[0] // self.head_dim  # local heads under tensor parallelism
        if allowed is not None:
            allowed = allowed.to(device=query.device, dtype=torch.bool)
        if isinstance(x, FoldedTokens):
            # The tokenizer's weights take the input's place: under head-split TP their
            # gradient (from this rank's heads only) is what gets all-reduced.
            x = FoldedTokens(x.patches, self.enter(x.weight), self.enter(x.bias), x.blocks)
            w = self._weights(folded_logits(x, self._u(query, wk, heads)), allowed)
            out = self._values(folded_pool(x, w), w, wv, bv, heads)
        elif self.impl == "direct":
            out = self._direct(self.enter(x), query, wk, bk, wv, bv, heads, allowed)
        else:
            x = self.enter(x)
            w = self._weights(torch.einsum("nsd,hqd->nhqs", x,
                                           self._u(query, wk, heads).to(x.dtype)), allowed)
            out = self._values(torch.einsum("nhqs,nsd->nhqd", w, x), w, wv, bv, heads)
        return self.leave(F.linear(out, local(self.proj.weight))) + local(self.proj.bias)

    def _u(self, query: Tensor, wk: Tensor, heads: int) -> Tensor:
        """u_hq = W_k^hᵀ q_hq (H, Q, D): logits are inputs dotted with these; q·b_k, the
        same for every input, cancels in the softmax."""
        q = query.view(query.shape[0], heads, self.head_dim)
        return torch.einsum("qhe,hed->hqd", q, wk.view(heads, self.head_dim, -1))

    def _values(self, pooled: Tensor, w: Tensor, wv: Tensor, bv: Tensor, heads: int
                ) -> Tensor:
        """Weighted values from the weighted inputs (N, H, Q, D) → (N, Q, H · head_dim):
        Σ w (W x + b) = W (Σ w x) + b · Σ w, the bias only where weights exist."""
        n, _, q_count, d = pooled.shape
        out = torch.einsum("nhqd,hed->nqhe", pooled,
                           wv.view(heads, self.head_dim, d).to(pooled.dtype))
        out = out + bv.view(heads, self.head_dim) * w.sum(-1).permute(0, 2, 1)[..., None]
        return out.reshape(n, q_count, heads * self.head_dim)

    def _weights(self, logits: Tensor, allowed: Tensor | None) -> Tensor:
        """Softmax over the inputs; a finite fill keeps gradients clean, and queries
        without members get zero weights."""
        logits = logits / math.sqrt(self.head_dim)
        if allowed is None:
            return torch.softmax(logits, dim=-1)
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1) * allowed.any(dim=-1, keepdim=True)

    def _direct(self, x: Tensor, query: Tensor, wk: Tensor, bk: Tensor, wv: Tensor,
                bv: Tensor, heads: int, allowed: Tensor | None) -> Tensor:
        n, s, _ = x.shape
        q_count = query.shape[0]
        q = query.view(1, q_count, heads, self.head_dim).transpose(1, 2)
        k = F.linear(x, wk, bk).view(n, s, heads, self.head_dim).transpose(1, 2)
        v = F.linear(x, wv, bv).view(n, s, heads, self.head_dim).transpose(1, 2)
        mask = None
        if allowed is not None:  # a finite fill, so a query without members stays finite
            mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(
                ~allowed, torch.finfo(x.dtype).min)
        out = F.scaled_dot_product_attention(q.expand(n, -1, -1, -1).to(x.dtype), k, v,
                                             attn_mask=mask)  # (N, H, Q, head_dim)
        if allowed is not None:  # ... and returns zero weights, hence zero values
            out = out * allowed.any(dim=-1)[:, None].to(out.dtype)
        return out.transpose(1, 2).reshape(n, q_count, heads * self.head_dim)
