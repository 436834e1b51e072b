"""The D-CHAG encoder: tokenize channels → aggregate channels → ViT over locations.

`gather_partials` is the one seam where the distributed engine plugs in its all-gather;
in a single process the partials of all groups are already local.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor, nn

from pipelines.model.aggregate import ChannelAggregator
from pipelines.model.config import ModelConfig
from pipelines.model.layers import Block, sincos_2d
from pipelines.model.tokenizer import ChannelTokenizer

GatherFn = Callable[[Tensor], Tensor]


def _no_gather(partials: Tensor) -> Tensor:
    return partials


class DCHAGEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.aggregator = ChannelAggregator(cfg)
        # One tokenizer per channel group, so a tensor-parallel rank can hold only its own.
        self.tokenizers = nn.ModuleDict(
            {str(g): ChannelTokenizer(hi - lo, cfg.patch, cfg.embed_dim)
             for g, (lo, hi) in enumerate(pairwise(self.aggregator.bounds))})
        self.register_buffer("pos_embed", sincos_2d(cfg.embed_dim, cfg.grid), persistent=False)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim)
        # Set by the distributed engine: the groups this rank tokenizes and aggregates,
        # and the all-gather that joins the partials of all ranks.
        self.local_groups: list[int] = list(range(self.aggregator.n_groups))
        self.gather_partials: GatherFn = _no_gather

    def group_tokens(self, x: Tensor, channel_ids: Tensor | None, patch_ids: Tensor | None
                     ) -> list[tuple[int, Tensor, Tensor]]:
        """(group, tokens (B, L', c_g, D), member ids relative to the group) for each local
        group; input channels outside the local groups are ignored. Without `channel_ids`,
        x holds every channel in order and each group takes a slice (no copy)."""
        out = []
        for g in self.local_groups:
            lo, hi = self.aggregator.group_channels(g)
            if channel_ids is None:
                members = torch.arange(hi - lo, device=x.device)
                part = x[:, lo:hi]
            else:
                sel = torch.nonzero((channel_ids >= lo) & (channel_ids < hi)).flatten()
                members, part = channel_ids[sel] - lo, x[:, sel]
            out.append((g, self.tokenizers[str(g)](part, members, patch_ids), members))
        return out

    def embed(self, x: Tensor, channel_ids: Tensor | None = None,
              patch_ids: Tensor | None = None) -> Tensor:
        """x (B, c, H, W) → aggregated tokens with position embedding (B, L or L', D)."""
        tokens = self.group_tokens(x, channel_ids, patch_ids)
        if self.cfg.variant == "baseline":
            z = self.aggregator(torch.cat([t for _, t, _ in tokens], dim=2))
        else:
            # Known to every rank from the channel ids: no communication needed.
            present = (torch.ones(self.aggregator.n_groups, dtype=torch.bool, device=x.device)
                       if channel_ids is None else self.aggregator.group_presence(channel_ids))
            partials = torch.stack([self.aggregator.partial(g, t, m) for g, t, m in tokens],
                                   dim=2)
            z = self.aggregator.combine(self.gather_partials(partials), present)
        pos = self.pos_embed.to(z.dtype)
        if patch_ids is None:
            return z + pos
        return z + pos[patch_ids]
    def blocks_forward(self, z: Tensor) -> Tensor:
        for block in self.blocks:
            z = block(z)
        return self.norm(z)

    def forward(self, x: Tensor, channel_ids: Tensor | None = None,
                patch_ids: Tensor | None = None, add: Tensor | None = None) -> Tensor:
        """Encoded tokens (B, L', D); `add` (B, 1, D) is added before the blocks (lead time)."""
        z = self.embed(x, channel_ids, patch_ids)
        if add is not None:
            z = z + add
        return self.blocks_forward(z)
