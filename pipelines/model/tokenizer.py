"""Per-channel patch embedding (variable tokenization, as in ClimaX), as one batched matmul.

Every channel has its own patch-embedding weights, so any subset of channels can be
tokenized (a model pretrained on one channel set can be fine-tuned on another) and a
tensor-parallel rank can tokenize only the channels it owns. A grouped Conv2d computes
the same thing but is ~20× slower on GPUs and fails outright at C=1024, D=4096 (32-bit
index limit); a Python loop over per-channel modules is slower still.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) → (B, L, C, p·p), patches in row-major order."""
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    x = x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, gh * gw, c, patch * patch)


def unpatchify(patches: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """(B, L, C, p·p) → (B, C, H, W); the inverse of `patchify`."""
    b, _, c, _ = patches.shape
    gh, gw = grid
    x = patches.reshape(b, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, gh * patch, gw * patch)


class ChannelTokenizer(nn.Module):
    """Channel tokens (B, L, C, D) = per-channel linear patch embedding + channel embedding.

    The channel axis sits next to D so channel aggregation runs as one batched op over
    B·L without a transpose. Position embeddings are added after aggregation (once per
    location rather than once per channel and location, as in ClimaX).
    """

    def __init__(self, channels: int, patch: int, dim: int):
        super().__init__()
        self.patch = patch
        k = patch * patch
        bound = 1 / math.sqrt(k)  # the Conv2d default for a one-channel patch embedding
        self.weight = nn.Parameter(torch.empty(channels, k, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels, dim).uniform_(-bound, bound))
        self.channel_embed = nn.Parameter(torch.randn(channels, dim) * 0.02)

    def forward(self, x: Tensor, channel_ids: Tensor, patch_ids: Tensor | None = None) -> Tensor:
        """x (B, c, H, W) holds the channels `channel_ids` (c,); `patch_ids` (B, L') keeps
        only those patches (MAE's visible ones). Returns (B, L or L', c, D)."""
        if x.shape[1] != channel_ids.numel():
            raise ValueError(f"x has {x.shape[1]} channels but {channel_ids.numel()} channel ids")
        patches = patchify(x, self.patch)  # (B, L, c, k)
        if patch_ids is not None:
            idx = patch_ids[:, :, None, None].expand(-1, -1, *patches.shape[2:])
            patches = torch.gather(patches, 1, idx)
        w = self.weight[channel_ids]  # (c, k, D)
        tokens = torch.einsum("blck,ckd->blcd", patches, w)
        return tokens + (self.bias[channel_ids] + self.channel_embed[channel_ids])
