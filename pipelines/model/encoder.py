"""The D-CHAG encoder: tokenize channels → aggregate channels → ViT over locations.

`gather_partials` is the one seam where the distributed engine plugs in its all-gather;
in a single process the partials of all groups are already local.
"""

from __future__ import annotations

from collections.abc import Callable

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
        self.tokenizer = ChannelTokenizer(cfg.channels, cfg.patch, cfg.embed_dim)
        self.aggregator = ChannelAggregator(cfg)
        self.register_buffer("pos_embed", sincos_2d(cfg.embed_dim, cfg.grid), persistent=False)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim)
        # Set by the distributed engine: the groups this rank aggregates, and the gather.
        self.local_groups: list[int] = list(range(self.aggregator.n_groups))
        self.gather_partials: GatherFn = _no_gather

    def all_channel_ids(self, device: torch.device | None = None) -> Tensor:
        return torch.arange(self.cfg.channels, device=device)

    def embed(self, x: Tensor, channel_ids: Tensor, patch_ids: Tensor | None = None) -> Tensor:
        """x (B, c, H, W) → aggregated tokens with position embedding (B, L or L', D)."""
        if self.cfg.variant != "baseline":
            # Known to every rank from the channel ids: no communication needed.
            present = self.aggregator.group_presence(channel_ids)
        if self.cfg.variant != "baseline" and len(self.local_groups) < self.aggregator.n_groups:
            # This rank tokenizes only the channels of the groups it owns.
            lo = self.aggregator.group_channels(self.local_groups[0])[0]
            hi = self.aggregator.group_channels(self.local_groups[-1])[1]
            keep = torch.nonzero((channel_ids >= lo) & (channel_ids < hi)).flatten()
            if keep.numel() < channel_ids.numel():
                x, channel_ids = x[:, keep], channel_ids[keep]
        tokens = self.tokenizer(x, channel_ids, patch_ids)  # (B, L', c, D)
        if self.cfg.variant == "baseline":
            z = self.aggregator(tokens, channel_ids)
        else:
            partials, _ = self.aggregator.partials(tokens, channel_ids, self.local_groups)
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
        if channel_ids is None:
            channel_ids = self.all_channel_ids(x.device)
        z = self.embed(x, channel_ids, patch_ids)
        if add is not None:
            z = z + add
        return self.blocks_forward(z)
