"""The D-CHAG encoder: tokenize channels → aggregate channels → ViT over locations.

`gather_partials` is the one seam where the distributed engine plugs in its all-gather;
in a single process the partials of all groups are already local.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pipelines.model.aggregate import ChannelAggregator
from pipelines.model.channel_math import FoldedTokens
from pipelines.model.config import ModelConfig
from pipelines.model.layers import Block, sincos_2d
from pipelines.model.tokenizer import ChannelTokenizer, select_patches, tokenize

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
        # Recompute the channel stage in the backward pass instead of keeping its
        # (B, L, C, D)-sized activations (`--ac-channels`).
        self.checkpoint_channels = False

    def reset_buffers(self) -> None:
        self.pos_embed = sincos_2d(self.cfg.embed_dim, self.cfg.grid).to(self.pos_embed.device)

    def group_inputs(self, x: Tensor, channel_ids: Tensor | None
                     ) -> list[tuple[int, Tensor, Tensor]]:
        """(group, its channels of x (B, c_g, H, W), member ids relative to the group) for
        each local group; input channels outside the local groups are ignored. Without
        `channel_ids`, x holds every channel in order and each group takes a slice."""
        out = []
        for g in self.local_groups:
            lo, hi = self.aggregator.group_channels(g)
            if channel_ids is None:
                out.append((g, x[:, lo:hi], torch.arange(hi - lo, device=x.device)))
            else:
                sel = torch.nonzero((channel_ids >= lo) & (channel_ids < hi)).flatten()
                out.append((g, x[:, sel], channel_ids[sel] - lo))
        return out

    def embed(self, x: Tensor, channel_ids: Tensor | None = None,
              patch_ids: Tensor | None = None) -> Tensor:
        """x (B, c, H, W) → aggregated tokens with position embedding (B, L or L', D)."""
        if self.cfg.input_ids is not None:  # an extended model: input positions → channel ids
            if channel_ids is None:  # every input: put them in channel-id order
                order = sorted(range(len(self.cfg.input_ids)), key=self.cfg.input_ids.__getitem__)
                x = x[:, order]
            else:
                channel_ids = torch.tensor(self.cfg.input_ids, device=x.device)[channel_ids]
        if self.cfg.variant == "baseline":
            z = self._run_channel_stage(self.baseline_stage, x, channel_ids, patch_ids)
        else:
            partials = self._run_channel_stage(self.local_partials, x, channel_ids, patch_ids)
            # Known to every rank from the channel ids: no communication needed.
            present = (torch.ones(self.aggregator.n_groups, dtype=torch.bool, device=x.device)
                       if channel_ids is None else self.aggregator.group_presence(channel_ids))
            z = self.aggregator.combine(self.gather_partials(partials), present)
        pos = self.pos_embed.to(z.dtype)
        if patch_ids is None:
            return z + pos
        return z + pos[patch_ids]

    def _run_channel_stage(self, stage, x: Tensor, channel_ids: Tensor | None,
                           patch_ids: Tensor | None) -> Tensor:
        if self.checkpoint_channels and torch.is_grad_enabled():
            return checkpoint(stage, x, channel_ids, patch_ids, use_reentrant=False)
        return stage(x, channel_ids, patch_ids)

    def local_partials(self, x: Tensor, channel_ids: Tensor | None,
                       patch_ids: Tensor | None) -> Tensor:
        """D-CHAG: the partial tokens of this rank's groups (B, L', g, D).

        `fused`/`folded`: D-CHAG-L's partial is one matrix product per group (its levels
        folded into the tokenizer), and `folded` D-CHAG-C's first level attends over
        channels it never tokenizes (`channel_math`)."""
        impl, out = self.cfg.channel_impl, []
        for g, part, members in self.group_inputs(x, channel_ids):
            tokenizer, group = self.tokenizers[str(g)], self.aggregator.groups[str(g)]
            if self.cfg.variant == "L" and impl != "direct":
                out.append(tokenizer(part, members, patch_ids,
                                     fold=group.linear_fold(members)))
                continue
            if impl == "folded":
                tokens = tokenizer.folded(part, members, patch_ids,
                                          group.first_blocks(members))
            else:
                tokens = tokenizer(part, members, patch_ids)
            out.append(self.aggregator.partial(g, tokens, members))
        return torch.stack(out, dim=2)

    def baseline_stage(self, x: Tensor, channel_ids: Tensor | None,
                       patch_ids: Tensor | None) -> Tensor:
        """Pure TP: every channel tokenized in one batched matmul (a single (B, L', C, D)
        tensor, no per-group copies), then one cross-attention over all of them."""
        weights, biases = [], []
        for g in self.local_groups:
            tok = self.tokenizers[str(g)]
            weights.append(tok.weight)
            biases.append(tok.bias + tok.channel_embed)
        weight, bias = torch.cat(weights), torch.cat(biases)
        if channel_ids is not None:
            weight, bias = weight[channel_ids], bias[channel_ids]
        if self.cfg.channel_impl == "folded":
            patches = select_patches(x, self.cfg.patch, patch_ids)
            return self.aggregator(FoldedTokens(patches, weight, bias))
        return self.aggregator(tokenize(x, weight, bias, self.cfg.patch, patch_ids))

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
