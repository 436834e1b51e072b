"""Channel aggregation: many channel tokens per location → one token per location.

- `baseline`: one cross-attention with a learned query over all C channels (ClimaX);
  its memory and compute grow with C on every tensor-parallel rank.
- D-CHAG: the channels are split into G contiguous groups. Each group is reduced to one
  *partial* token by a `GroupAggregator` — linear (variant L) or cross-attention
  (variant C) — optionally through a tree of sub-groups (`tree` extra levels, `fanout`
  sub-groups per level). A shared final cross-attention over the G partials gives the
  token. Distributed, each rank runs the groups it owns and one all-gather joins the
  partials; here, in one process, all groups run locally.

Groups and sub-groups are fixed ranges of channel ids, so a channel subset simply leaves
some members out; a partial with no present member is masked out of the next level.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor, nn

from pipelines.model.config import ModelConfig
from pipelines.model.layers import QueryAttention


def split_even(n: int, parts: int) -> list[int]:
    """Boundaries of `parts` contiguous near-equal blocks of range(n) (larger blocks first)."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return bounds


def block_assignment(n_in: int, n_out: int) -> list[int]:
    """Which output block each of `n_in` inputs belongs to."""
    bounds = split_even(n_in, n_out)
    return [o for o, (lo, hi) in enumerate(pairwise(bounds)) for _ in range(lo, hi)]


class LinearLevel(nn.Module):
    """Each output is a learned weighted sum of its members (D-CHAG-L): Linear(n, 1) per block."""

    def __init__(self, n_in: int, n_out: int, dim: int):
        super().__init__()
        assign = block_assignment(n_in, n_out)
        self.register_buffer("assign", torch.tensor(assign), persistent=False)
        # Starts as the mean of each block.
        self.weight = nn.Parameter(torch.tensor([1.0 / assign.count(o) for o in assign]))
        self.bias = nn.Parameter(torch.zeros(n_out, dim))
        self.n_out = n_out

    def forward(self, x: Tensor, members: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, s, D) holds inputs `members` (s,) of this level; present (s,) bool."""
        onehot = nn.functional.one_hot(self.assign[members], self.n_out).T.to(x.dtype)
        mix = onehot * (self.weight[members] * present.to(x.dtype))  # (n_out, s)
        out = torch.einsum("os,nsd->nod", mix, x) + self.bias
        return out, (onehot.bool() & present).any(dim=1)


class AttentionLevel(nn.Module):
    """Each output is a learned-query cross-attention over its members (D-CHAG-C)."""

    def __init__(self, n_in: int, n_out: int, dim: int, heads: int):
        super().__init__()
        self.register_buffer("assign", torch.tensor(block_assignment(n_in, n_out)),
                             persistent=False)
        self.attn = QueryAttention(dim, heads, n_queries=n_out)
        self.n_out = n_out

    def forward(self, x: Tensor, members: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        allowed = nn.functional.one_hot(self.assign[members], self.n_out).T.bool() & present
        return self.attn(x, allowed), allowed.any(dim=1)


class GroupAggregator(nn.Module):
    """One channel group → one partial token, through `tree` extra levels of sub-groups."""

    def __init__(self, n_channels: int, cfg: ModelConfig):
        super().__init__()
        counts = [n_channels]
        for level in range(cfg.tree, 0, -1):
            counts.append(min(cfg.tree_fanout**level, counts[-1]))
        counts.append(1)
        self.counts = counts
        make = (lambda a, b: LinearLevel(a, b, cfg.embed_dim)) if cfg.variant == "L" else (
            lambda a, b: AttentionLevel(a, b, cfg.embed_dim, cfg.heads))
        self.levels = nn.ModuleList(make(a, b) for a, b in pairwise(counts))

    def forward(self, x: Tensor, members: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, s, D): the present channels `members` (s,) (ids relative to the group).
        Returns the partial (N, 1, D) and whether any member was present (1,)."""
        present = torch.ones(members.numel(), dtype=torch.bool, device=x.device)
        for level in self.levels:
            x, present = level(x, members, present)
            members = torch.arange(x.shape[1], device=x.device)
        return x, present


class ChannelAggregator(nn.Module):
    """Baseline (one full cross-attention) or D-CHAG (group partials + final cross-attention).

    Group modules live in a `ModuleDict` keyed by group number, so the distributed engine
    can drop the groups a rank does not own: each rank then holds (and checkpoints) only
    its own groups' weights, under the same names the single-process model uses.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.variant = cfg.variant
        self.bounds = split_even(cfg.channels, cfg.n_groups)
        if cfg.variant == "baseline":
            self.full = QueryAttention(cfg.embed_dim, cfg.heads, n_queries=1)
        else:
            self.groups = nn.ModuleDict({str(g): GroupAggregator(hi - lo, cfg)
                                         for g, (lo, hi) in enumerate(pairwise(self.bounds))})
            self.final = QueryAttention(cfg.embed_dim, cfg.heads, n_queries=1)

    @property
    def n_groups(self) -> int:
        return len(self.bounds) - 1

    def group_channels(self, group: int) -> tuple[int, int]:
        return self.bounds[group], self.bounds[group + 1]

    def group_presence(self, channel_ids: Tensor) -> Tensor:
        """(G,) whether each group has at least one of `channel_ids`."""
        edges = torch.tensor(self.bounds, device=channel_ids.device)
        group_of = torch.bucketize(channel_ids, edges[1:], right=True)
        return torch.zeros(self.n_groups, dtype=torch.bool, device=channel_ids.device
                           ).index_fill(0, group_of, True)

    def partial(self, group: int, tokens: Tensor, members: Tensor) -> Tensor:
        """Tokens (B, L, s, D) of one group's present channels `members` (ids relative to
        the group) → that group's partial token (B, L, D)."""
        b, length, s, d = tokens.shape
        out, _ = self.groups[str(group)](tokens.reshape(b * length, s, d), members)
        return out.reshape(b, length, d)

    def combine(self, partials: Tensor, present: Tensor) -> Tensor:
        """The final cross-attention over all G partials (B, L, G, D) → (B, L, D)."""
        b, length, g, d = partials.shape
        out = self.final(partials.reshape(b * length, g, d), present[None, :])
        return out.reshape(b, length, d)

    def forward(self, tokens: Tensor) -> Tensor:
        """Baseline: one cross-attention over all channel tokens (B, L, C, D) → (B, L, D)."""
        b, length, c, d = tokens.shape
        return self.full(tokens.reshape(b * length, c, d)).reshape(b, length, d)
