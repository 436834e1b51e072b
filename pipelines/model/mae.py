"""Masked autoencoder on many-channel images ("mask prediction").

Vocabulary as in the MAE paper: `random_masking` returns the visible patch ids, the
binary `mask` (1 = masked) and `ids_restore`; the loss is the MSE on masked patches only,
optionally against per-patch normalised targets (`norm_pix_loss`). One mask is shared by
all channels of a patch, and the decoder reconstructs *every* band of the masked patches.
Only visible patches are tokenized, so the costly per-channel work shrinks with the ratio.

With `fill="biharmonic"` (what `dchag pretrain` trains) the decoder's output is a
correction to the biharmonic inpainting of the hidden pixels from the visible ones
(`pipelines.model.fill`), so the network starts at the strongest simple baseline and is
trained on what it gets wrong.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipelines.model.config import ModelConfig
from pipelines.model.encoder import DCHAGEncoder
from pipelines.model.fill import biharmonic_fill
from pipelines.model.layers import Block, sincos_2d
from pipelines.model.low_rank import fit_absent
from pipelines.model.new_outputs import ZeroStartLinear
from pipelines.model.tokenizer import mask_pixels, patchify


def random_masking(batch: int, length: int, mask_ratio: float, device: torch.device,
                   generator: torch.Generator | None = None, noise: Tensor | None = None
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample random masking by shuffling: (ids_keep (B, L_keep), mask (B, L), ids_restore).

    `noise` (B, L) fixes the shuffle, e.g. so data-parallel ranks reproduce one global batch."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep = max(1, round(length * (1 - mask_ratio)))
    if noise is None:
        noise = torch.rand(batch, length, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(batch, length, device=device)
    mask[:, :keep] = 0
    return ids_keep, torch.gather(mask, 1, ids_restore), ids_restore


class MAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = DCHAGEncoder(cfg)
        dd = cfg.decoder_dim
        self.decoder_embed = nn.Linear(cfg.embed_dim, dd)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dd) * 0.02)
        self.register_buffer("decoder_pos", sincos_2d(dd, cfg.grid), persistent=False)
        self.decoder_blocks = nn.ModuleList(Block(dd, cfg.decoder_heads, cfg.mlp_ratio)
                                            for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd)
        known = cfg.channels - cfg.new_outputs
        self.decoder_pred = nn.Linear(dd, known * cfg.patch**2)
        # Bands added to a pretrained MAE (`pretrain --new-channels`): decoder rows of their
        # own, starting at zero, so a new band starts at the first guess (the inpainting).
        self.new_pred = (ZeroStartLinear(dd, cfg.new_outputs * cfg.patch**2)
                         if cfg.new_outputs else None)
        # Whether the decoder learned to correct channels absent from the input where a
        # patch is visible (training with `--channel-dropout` scores them there); without
        # that its output there was never trained, and the first guess stands alone.
        self.absent_corrected = False

    def reset_buffers(self) -> None:
        self.decoder_pos = sincos_2d(self.cfg.decoder_dim, self.cfg.grid).to(
            self.decoder_pos.device)

    def decode(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """Visible latents (B, L_keep, D) → predictions for every patch (B, L, C, p·p)."""
        x = self.decoder_embed(latent)
        b, keep, dd = x.shape
        length = ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(b, length - keep, dd)], dim=1)
        x = torch.gather(x, 1, ids_restore[:, :, None].expand(-1, -1, dd))
        x = x + self.decoder_pos.to(x.dtype)
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_norm(x)
        pred = self.decoder_pred(x)
        if self.new_pred is not None:
            pred = torch.cat([pred, self.new_pred(x)], dim=-1)
        pred = pred.view(b, length, self.cfg.channels, self.cfg.patch**2)
        if self.cfg.input_ids is not None:  # rows in channel-id order → input order
            pred = pred[:, :, list(self.cfg.input_ids)]
        return pred

    def set_spectral_prior(self, mean: Tensor, components: Tensor,
                           weight: Tensor | None = None) -> None:
        """The run's principal spectra (normalised; `pipelines.train.spectral_prior`):
        channels absent from the input then start from the low-rank fit of the present
        ones. Buffers, not parameters, and not saved with the weights: the run's
        model.json holds them, as it holds the normalisation."""
        if components.shape[-1] != self.cfg.channels:
            raise ValueError(f"a spectral basis over {components.shape[-1]} channels for a "
                             f"model of {self.cfg.channels}")
        device = self.decoder_pred.weight.device
        self.register_buffer("spectral_mean", mean.to(device), persistent=False)
        self.register_buffer("spectral_components", components.to(device), persistent=False)
        self.register_buffer("spectral_weight", None if weight is None else weight.to(device),
                             persistent=False)

    def first_guess(self, x: Tensor, mask: Tensor, channel_ids: Tensor | None) -> Tensor:
        """What the decoder corrects, (B, L, C, p·p): the biharmonic fill of the hidden
        patches of `x` (B, c, H, W, the `channel_ids` among the model's C channels); for
        channels absent from `x`, the low-rank fit of the filled present ones where the
        run has a spectral prior, else 0 (the normalised mean); 0 with `fill="none"`."""
        b, length = mask.shape
        p = self.cfg.patch
        guess = x.new_zeros(b, length, self.cfg.channels, p * p)
        if self.cfg.fill == "none":
            return guess
        hidden = mask_pixels(mask, p, self.cfg.grid)
        filled = biharmonic_fill(x.detach(), ~hidden)
        if channel_ids is None:
            return patchify(filled, p)
        if getattr(self, "spectral_components", None) is not None:
            full = fit_absent(filled, channel_ids, self.spectral_mean,
                              self.spectral_components, self.spectral_weight)
            full[:, channel_ids] = filled  # the present channels stay as filled
            return patchify(full, p)
        guess[:, :, channel_ids] = patchify(filled, p)
        return guess

    def predict(self, x: Tensor, channel_ids: Tensor | None, ids_keep: Tensor, mask: Tensor,
                ids_restore: Tensor) -> Tensor:
        """Every channel of every patch, (B, L, C, p·p), from the visible patches of `x`."""
        latent = self.encoder(x, channel_ids, patch_ids=ids_keep)
        correction = self.decode(latent, ids_restore)
        if channel_ids is not None and not self.absent_corrected:
            present = torch.zeros(self.cfg.channels, dtype=torch.bool, device=x.device)
            present[channel_ids] = True
            trained = (mask[:, :, None] > 0) | present[None, None, :]  # (B, L, C)
            correction = correction * trained[..., None].to(correction.dtype)
        return correction + self.first_guess(x, mask, channel_ids)

    def forward(self, x: Tensor, channel_ids: Tensor | None = None, mask_ratio: float = 0.75,
                norm_pix_loss: bool = False, generator: torch.Generator | None = None,
                noise: Tensor | None = None, full: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, c, H, W) → (loss, pred (B, L, c, p·p), mask (B, L)).

        With `full` (B, C, H, W), every channel of the model, `x` holds only the
        `channel_ids` among them: the others are absent from the input, and the model
        predicts and is scored on every channel — the masked patches of the present
        channels and every patch of the absent ones (pred then has all C channels)."""
        ids_keep, mask, ids_restore = random_masking(x.shape[0], self.cfg.num_patches,
                                                     mask_ratio, x.device, generator, noise)
        pred = self.predict(x, channel_ids, ids_keep, mask, ids_restore)
        if full is not None and channel_ids is not None:
            hidden = mask[:, :, None].expand(-1, -1, full.shape[1]).clone()
            absent = torch.ones(full.shape[1], dtype=torch.bool, device=x.device)
            absent[channel_ids] = False
            hidden[:, :, absent] = 1.0
            return mae_loss(full, pred, hidden, self.cfg.patch, norm_pix_loss), pred, mask
        if channel_ids is not None:
            pred = pred[:, :, channel_ids]
        return mae_loss(x, pred, mask, self.cfg.patch, norm_pix_loss), pred, mask


def mae_loss(x: Tensor, pred: Tensor, mask: Tensor, patch: int, norm_pix_loss: bool) -> Tensor:
    """Mean squared error over masked patches only: `mask` (B, L) covers all channels and
    pixels of a patch; (B, L, c) says per channel which patches count."""
    target = patchify(x, patch)
    if norm_pix_loss:
        mean = target.mean(dim=(-2, -1), keepdim=True)
        var = target.var(dim=(-2, -1), keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    if mask.dim() == 3:  # per channel: (B, L, c)
        per_channel = ((pred.float() - target.float()) ** 2).mean(dim=-1)
        return (per_channel * mask).sum() / mask.sum().clamp(min=1)
    per_patch = ((pred.float() - target.float()) ** 2).mean(dim=(-2, -1))  # (B, L)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)
