"""Transformer building blocks, written so tensor parallelism can shard them unchanged.

q, k, v and fc1 are separate `nn.Linear`s (column-splittable: each rank keeps whole heads);
proj and fc2 are row-splittable. Attention infers the number of heads from the width of
its q projection, so a column-sharded layer simply runs with its local heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        self.k = nn.Linear(dim, dim)
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


class QueryAttention(nn.Module):
    """Cross-attention from learned queries to a set of tokens (channel aggregation).

    tokens (N, S, D) → (N, Q, D), one output per learned query. `allowed` (Q, S) restricts
    each query to its members (a tree's sub-groups); `present` (S,) marks which inputs
    exist (a channel subset). A query with no allowed, present input returns zeros.
    """

    def __init__(self, dim: int, heads: int, n_queries: int = 1):
        super().__init__()
        self.head_dim = dim // heads
        self.query = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, allowed: Tensor | None = None) -> Tensor:
        n, s, _ = x.shape
        q_count = self.query.shape[0]
        k, v = self.k(x), self.v(x)
        heads = k.shape[-1] // self.head_dim  # local heads if k, v and query are sharded
        q = self.query.view(1, q_count, heads, self.head_dim).transpose(1, 2)
        k = k.view(n, s, heads, self.head_dim).transpose(1, 2)
        v = v.view(n, s, heads, self.head_dim).transpose(1, 2)
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (N, H, Q, S)
        if allowed is None:
            weights = torch.softmax(logits, dim=-1)
        else:
            allowed = allowed.to(device=x.device, dtype=torch.bool)
            # A finite fill keeps gradients clean; queries without members are zeroed after.
            logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
            weights = torch.softmax(logits, dim=-1) * allowed.any(dim=-1, keepdim=True)
        out = (weights @ v).transpose(1, 2).reshape(n, q_count, heads * self.head_dim)
        return self.proj(out)
