"""A first guess for the hidden pixels, from the visible ones, inside the network.

The MAE's decoder predicts a correction to this guess rather than the pixels from
nothing, as the forecaster predicts a tendency rather than the next state. Biharmonic
inpainting is the hardest simple baseline for hyperspectral gaps: starting from it, the
network has only to learn what inpainting gets wrong — a leaf edge through the hole, the
spectrum a soil patch there should have — instead of first relearning 500-band spectra
from a few latent numbers per patch (a 16-wide decoder cannot: every pixel of a patch
then lies in one 16-dimensional subspace, and the spectra blur into a leaf–soil blend).

`biharmonic_fill` is scikit-image's `inpaint_biharmonic` in torch: the surface of least
‖Δu‖² through the visible pixels, then clipped per channel to the visible range. Each
channel is filled on its own with the same operator, so the fill is the same on every
tensor-parallel rank and has no parameters: it adds nothing to a checkpoint. Small images
(at most `DENSE_PIXELS`) are solved exactly, in one batched dense solve; larger ones by
conjugate gradients started from a harmonic (membrane) fill, which scales linearly.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

DENSE_PIXELS = 1024  # 32 × 32: a (1024 × 1024) solve per image
CG_ITERS = 80
JACOBI_SWEEPS = 24


def laplacian(u: Tensor) -> Tensor:
    """5-point Laplacian with reflecting edges (a missing neighbour counts as the pixel)."""
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * u


@lru_cache(maxsize=8)
def _bilaplacian_matrix(h: int, w: int) -> Tensor:
    """ΔᵀΔ on an h × w image as a dense (h·w, h·w) float64 matrix (Δ is symmetric)."""
    eye = torch.eye(h * w, dtype=torch.float64, device="cpu").view(h * w, 1, h, w)
    lap = laplacian(eye).view(h * w, h * w)
    return lap @ lap


def _dense_fill(x: Tensor, visible: Tensor) -> Tensor:
    """Exact: visible rows of the system are the identity, hidden rows ΔᵀΔ u = 0."""
    b, c, h, w = x.shape
    m = _bilaplacian_matrix(h, w).to(x.device, torch.float32)
    vis = visible.reshape(b, h * w).to(torch.float32)
    hid = 1 - vis
    system = hid[:, :, None] * m * hid[:, None, :] + torch.diag_embed(vis)
    u = x.reshape(b, c, h * w).transpose(1, 2).float() * vis[:, :, None]
    rhs = u - hid[:, :, None] * (m @ u)
    # symmetric positive definite (ΔᵀΔ on the hidden pixels, the identity elsewhere)
    factor = torch.linalg.cholesky(system)
    out = torch.cholesky_solve(rhs.contiguous(), factor)
    return out.transpose(1, 2).reshape(b, c, h, w).to(x.dtype)


def harmonic_fill(x: Tensor, visible: Tensor, sweeps: int = JACOBI_SWEEPS) -> Tensor:
    """Hidden pixels by Jacobi sweeps of the 4-neighbour mean (Laplace's equation), each
    level of an image pyramid started from the coarser one, so a hole of any size
    settles in a few sweeps per level."""
    vis = visible.to(x.dtype)
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0 and min(h, w) > 4:
        weight = F.avg_pool2d(vis, 2)
        coarse = harmonic_fill(F.avg_pool2d(x * vis, 2) / weight.clamp(min=1e-6),
                               weight > 0, sweeps)
        start = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
    else:
        start = ((x * vis).sum(dim=(-2, -1), keepdim=True)
                 / vis.sum(dim=(-2, -1), keepdim=True).clamp(min=1.0)).expand_as(x)
    u = torch.where(visible, x, start)
    for _ in range(sweeps):
        u = torch.where(visible, x, u + 0.25 * laplacian(u))
    return u


def _cg_fill(x: Tensor, visible: Tensor, iters: int = CG_ITERS) -> Tensor:
    """Least ‖Δu‖² over the hidden pixels by conjugate gradients, per channel."""
    hid = (~visible).to(x.dtype)
    dims = (-2, -1)
    u = harmonic_fill(x, visible)
    r = -hid * laplacian(laplacian(u))
    p, rr = r, (r * r).sum(dims, keepdim=True)
    for _ in range(iters):
        ap = hid * laplacian(laplacian(p))
        alpha = rr / (p * ap).sum(dims, keepdim=True).clamp(min=1e-30)
        u, r = u + alpha * p, r - alpha * ap
        rr_next = (r * r).sum(dims, keepdim=True)
        p = r + rr_next / rr.clamp(min=1e-30) * p
        rr = rr_next
    return u


def biharmonic_fill(x: Tensor, visible: Tensor, dense: bool | None = None) -> Tensor:
    """`x` (B, c, H, W) with the pixels where `visible` (B, 1, H, W) is False filled.
    `dense` picks the solver (None: exact up to `DENSE_PIXELS` pixels)."""
    visible = visible.bool()
    if dense is None:
        dense = x.shape[-2] * x.shape[-1] <= DENSE_PIXELS
    u = _dense_fill(x, visible) if dense else _cg_fill(x, visible)
    vis = visible.expand_as(x)
    big = torch.finfo(x.dtype).max
    lo = torch.where(vis, x, big).amin(dim=(-2, -1), keepdim=True)
    hi = torch.where(vis, x, -big).amax(dim=(-2, -1), keepdim=True)
    return torch.where(visible, x, torch.minimum(torch.maximum(u, lo), hi))
