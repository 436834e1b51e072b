"""Low-rank spectra: the principal spectra of a set of pixels, and the fit of a pixel's
absent bands from its present ones. Shared by the MAE's spectral prior (torch, inside
the model) and by the inpainting baselines it is scored against (numpy), so the two
use one definition of "low-rank"."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

LOW_RANK_VARIANCE = 0.999
LOW_RANK_MAX = 16


def principal_spectra(spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (band,), components (k, band)) of `spectra` (pixel, band): as many as hold
    `LOW_RANK_VARIANCE` of the variance, at most `LOW_RANK_MAX`."""
    mean = spectra.mean(axis=0)
    _, sing, vt = np.linalg.svd(spectra - mean, full_matrices=False)
    share = np.cumsum(sing**2) / max(float((sing**2).sum()), 1e-30)
    k = min(int(np.searchsorted(share, LOW_RANK_VARIANCE)) + 1, LOW_RANK_MAX, len(vt))
    return mean, vt[:k]


def fit_absent(x: Tensor, present: Tensor, mean: Tensor, comps: Tensor,
               weight: Tensor | None = None) -> Tensor:
    """Every channel of `x` (B, c, H, W, the channels `present` among the basis's C) at
    every pixel: the least-squares fit of the basis (mean (C,), comps (k, C)) to the
    present channels, evaluated at all C. `weight` (C,) weighs each channel's residual
    (the MAE passes its normalisation's std, so the fit is least squares in reflectance
    while `x` is normalised). At most c components are fitted, so the fit stays
    determined however few channels are present."""
    b, c, h, w = x.shape
    k = min(len(comps), c)
    basis = comps[:k].to(torch.float32)
    mu = mean.to(torch.float32)
    wt = (torch.ones_like(mu) if weight is None else weight.to(torch.float32))[present]
    rhs = (x.to(torch.float32) - mu[present][None, :, None, None]).permute(1, 0, 2, 3)
    a = basis[:, present]  # (k, c)
    aw = a * wt**2
    gram = aw @ a.T
    gram = gram + 1e-9 * gram.diagonal().mean().clamp(min=1e-12) * torch.eye(k, device=x.device)
    coef = torch.linalg.solve(gram, aw @ rhs.reshape(c, -1))  # (k, B·H·W)
    full = basis.T @ coef + mu[:, None]  # (C, B·H·W)
    return full.reshape(-1, b, h, w).permute(1, 0, 2, 3).to(x.dtype)
