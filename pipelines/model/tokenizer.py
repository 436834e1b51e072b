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

from pipelines.model.channel_math import FoldedTokens, linear_partial


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


def mask_pixels(mask: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """A patch mask (B, L), 1 = masked, as pixels (B, 1, H, W) bool: True where masked."""
    b, length = mask.shape
    return unpatchify(mask[:, :, None, None].expand(b, length, 1, patch * patch), patch,
                      grid) > 0.5


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

    def forward(self, x: Tensor, channel_ids: Tensor, patch_ids: Tensor | None = None,
                fold: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x (B, c, H, W) holds the channels `channel_ids` (c,); `patch_ids` (B, L') keeps
        only those patches (MAE's visible ones). Returns tokens (B, L or L', c, D) — or,
        given D-CHAG-L's folded mixing `fold` = (α, β), the group's partial (B, L', D) as
        one matrix product, without the tokens."""
        weight, bias = self.weight[channel_ids], self.bias[channel_ids] + \
            self.channel_embed[channel_ids]
        if fold is not None:
            if x.shape[1] != weight.shape[0]:
                raise ValueError(f"x has {x.shape[1]} channels but {weight.shape[0]} ids")
            return linear_partial(select_patches(x, self.patch, patch_ids), weight, bias,
                                  *fold)
        return tokenize(x, weight, bias, self.patch, patch_ids)

    def folded(self, x: Tensor, channel_ids: Tensor, patch_ids: Tensor | None,
               blocks: list[tuple[int, int]] | None = None) -> FoldedTokens:
        """The tokens of `forward`, described rather than computed (`channel_math`)."""
        return FoldedTokens(select_patches(x, self.patch, patch_ids), self.weight[channel_ids],
                            self.bias[channel_ids] + self.channel_embed[channel_ids], blocks)


def select_patches(x: Tensor, patch: int, patch_ids: Tensor | None) -> Tensor:
    """(B, c, H, W) → patches (B, L or L', c, p·p), keeping only `patch_ids` if given."""
    patches = patchify(x, patch)  # (B, L, c, k)
    if patch_ids is None:
        return patches
    idx = patch_ids[:, :, None, None].expand(-1, -1, *patches.shape[2:])
    return torch.gather(patches, 1, idx)


def tokenize(x: Tensor, weight: Tensor, bias: Tensor, patch: int,
             patch_ids: Tensor | None) -> Tensor:
    """Channel tokens (B, L', c, D) of x (B, c, H, W) with per-channel weights (c, p², D)
    and biases (c, D), as one batched matmul."""
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"x has {x.shape[1]} channels but {weight.shape[0]} channel weights")
    tokens = torch.einsum("blck,ckd->blcd", select_patches(x, patch, patch_ids), weight)
    return tokens + bias
