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

from pipelines.model.channel_math import FoldedTokens
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


def group_bounds(cfg: ModelConfig) -> list[int]:
    """The channel groups' boundaries: even, or the sizes an extended model records."""
    if cfg.group_sizes is None:
        return split_even(cfg.channels, cfg.n_groups)
    bounds = [0]
    for size in cfg.group_sizes:
        bounds.append(bounds[-1] + size)
    return bounds


def block_assignment(n_in: int, n_out: int) -> list[int]:
    """Which output block each of `n_in` inputs belongs to."""
    bounds = split_even(n_in, n_out)
    return [o for o, (lo, hi) in enumerate(pairwise(bounds)) for _ in range(lo, hi)]


class LinearLevel(nn.Module):
    """Each output is a learned weighted sum of its members (D-CHAG-L): Linear(n, 1) per block."""

    def __init__(self, n_in: int, n_out: int, dim: int):
        super().__init__()
        self.assignment = block_assignment(n_in, n_out)
        self.n_out = n_out
        self.register_buffer("assign", torch.tensor(self.assignment), persistent=False)
        # Starts as the mean of each block.
        self.weight = nn.Parameter(torch.tensor([1.0 / self.assignment.count(o)
                                                 for o in self.assignment]))
        self.bias = nn.Parameter(torch.zeros(n_out, dim))

    def reset_buffers(self) -> None:
        self.assign = torch.tensor(self.assignment, device=self.assign.device)

    def mix(self, members: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """The level as a matrix (n_out, s) over its present members, and which outputs
        have any member."""
        onehot = nn.functional.one_hot(self.assign[members], self.n_out).T
        mix = onehot.to(self.weight.dtype) * (self.weight[members] * present)
        return mix, (onehot.bool() & present).any(dim=1)

    def forward(self, x: Tensor, members: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, s, D) holds inputs `members` (s,) of this level; present (s,) bool."""
        mix, any_present = self.mix(members, present)
        out = torch.einsum("os,nsd->nod", mix.to(x.dtype), x) + self.bias
        return out, any_present


class AttentionLevel(nn.Module):
    """Each output is a learned-query cross-attention over its members (D-CHAG-C)."""

    def __init__(self, n_in: int, n_out: int, dim: int, heads: int, impl: str = "fused"):
        super().__init__()
        self.assignment = block_assignment(n_in, n_out)
        self.register_buffer("assign", torch.tensor(self.assignment), persistent=False)
        self.attn = QueryAttention(dim, heads, n_queries=n_out, impl=impl)
        self.n_out = n_out

    def reset_buffers(self) -> None:
        self.assign = torch.tensor(self.assignment, device=self.assign.device)

    def forward(self, x: Tensor | FoldedTokens, members: Tensor, present: Tensor
                ) -> tuple[Tensor, Tensor]:
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
            lambda a, b: AttentionLevel(a, b, cfg.embed_dim, cfg.heads, cfg.channel_impl))
        self.levels = nn.ModuleList(make(a, b) for a, b in pairwise(counts))

    def forward(self, x: Tensor | FoldedTokens, members: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, s, D) — or, for D-CHAG-C's first level, `FoldedTokens` — holds the present
        channels `members` (s,) (ids relative to the group). Returns the partial (N, 1, D)
        and whether any member was present (1,)."""
        present = torch.ones(members.numel(), dtype=torch.bool, device=members.device)
        for level in self.levels:
            x, present = level(x, members, present)
            members = torch.arange(x.shape[1], device=x.device)
        return x, present

    def linear_fold(self, members: Tensor) -> tuple[Tensor, Tensor]:
        """D-CHAG-L's levels folded into one weighted sum: partial = Σ_s α_s x_s + β,
        returns α (s,) and β (D,)."""
        present = torch.ones(members.numel(), dtype=torch.bool, device=members.device)
        alpha, beta = None, None
        for level in self.levels:
            mix, present = level.mix(members, present)
            alpha = mix if alpha is None else mix @ alpha
            beta = level.bias if beta is None else mix @ beta + level.bias
            members = torch.arange(mix.shape[0], device=mix.device)
        return alpha[0], beta[0]

    def first_blocks(self, members: Tensor) -> list[tuple[int, int]] | None:
        """The contiguous member range of each of the first level's outputs, when the
        group is complete (no channel subset); None otherwise."""
        if members.numel() != self.counts[0]:
            return None
        bounds = split_even(self.counts[0], self.counts[1])
        return list(pairwise(bounds))


class ChannelAggregator(nn.Module):
    """Baseline (one full cross-attention) or D-CHAG (group partials + final cross-attention).

    Group modules live in a `ModuleDict` keyed by group number, so the distributed engine
    can drop the groups a rank does not own: each rank then holds (and checkpoints) only
    its own groups' weights, under the same names the single-process model uses.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.variant = cfg.variant
        self.bounds = group_bounds(cfg)
        if cfg.variant == "baseline":
            self.full = QueryAttention(cfg.embed_dim, cfg.heads, 1, cfg.channel_impl)
        else:
            self.groups = nn.ModuleDict({str(g): GroupAggregator(hi - lo, cfg)
                                         for g, (lo, hi) in enumerate(pairwise(self.bounds))})
            self.final = QueryAttention(cfg.embed_dim, cfg.heads, 1, cfg.channel_impl)

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

    def partial(self, group: int, tokens: Tensor | FoldedTokens, members: Tensor) -> Tensor:
        """Tokens (B, L, s, D) of one group's present channels `members` (ids relative to
        the group) → that group's partial token (B, L, D)."""
        b, length = tokens.shape[:2]
        out, _ = self.groups[str(group)](flat_tokens(tokens), members)
        return out.reshape(b, length, -1)

    def combine(self, partials: Tensor, present: Tensor) -> Tensor:
        """The final cross-attention over all G partials (B, L, G, D) → (B, L, D)."""
        b, length, g, d = partials.shape
        out = self.final(partials.reshape(b * length, g, d), present[None, :])
        return out.reshape(b, length, d)

    def forward(self, tokens: Tensor | FoldedTokens) -> Tensor:
        """Baseline: one cross-attention over all channel tokens (B, L, C, D) → (B, L, D)."""
        b, length = tokens.shape[:2]
        return self.full(flat_tokens(tokens)).reshape(b, length, -1)


def flat_tokens(tokens: Tensor | FoldedTokens) -> Tensor | FoldedTokens:
    """(B, L, s, ·) → (B·L, s, ·): aggregation runs over every location at once."""
    if isinstance(tokens, FoldedTokens):
        p = tokens.patches
        return FoldedTokens(p.reshape(-1, *p.shape[2:]), tokens.weight, tokens.bias,
                            tokens.blocks)
    return tokens.reshape(-1, *tokens.shape[2:])
