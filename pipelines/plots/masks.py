"""Reconstruction figure: RGB of original / masked input / reconstruction, and spectra."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.data.zarr_store import open_artifact
from pipelines.eval.inpaint import inpaint
from pipelines.eval.mask_scores import MaskScores
from pipelines.eval.masks import matching_bands, matching_samples
from pipelines.figures import save_figure
from pipelines.plots.appl import rgb_composite


def plot_reconstruction(recon: Path, data: Path, index: int, out: Path,
                        scores: MaskScores | None = None) -> Path:
    """Original, masked input and reconstruction of one cube, spectra of two hidden pixels
    (with the nearest-visible-pixel baseline's), and, given `scores`, the RMSE of the model
    beside every inpainting baseline."""
    rg = open_artifact(recon, "reconstruction")
    g = open_artifact(data, "appl")
    r0, c0, h, w = rg.attrs["crop"]
    wl = rg["wavelength"][:]
    k = matching_samples(rg, g, recon, data)[index]
    bands = matching_bands(g["wavelength"][:], wl, data)
    orig = g["cube"].get_orthogonal_selection(
        (k, bands, slice(r0, r0 + h), slice(c0, c0 + w))).astype(np.float32)
    rec = rg["reconstruction"][index]
    hidden = rg["masked"][index].astype(bool)
    plant = g["mask"][k, r0:r0 + h, c0:c0 + w].astype(bool)
    rgb = rgb_composite(orig, wl)
    shown = rgb.copy()
    shown[hidden] = 0.5
    ratios = [1, 1, 1, 1.7] + ([1.2] if scores is not None else [])
    fig, axes = plt.subplots(1, len(ratios), figsize=(4.2 * sum(ratios), 4.2), dpi=110,
                             gridspec_kw={"width_ratios": ratios})
    near = inpaint("nearest_pixel", orig, hidden)
    for ax, img, title in ((axes[0], rgb, "original"),
                           (axes[1], shown, f"input ({hidden.mean():.0%} masked)"),
                           (axes[2], rgb_composite(rec, wl), "reconstruction")):
        ax.imshow(img)
        ax.set(title=title, xticks=[], yticks=[])
    picks = [("plant", hidden & plant, "tab:green"), ("background", hidden & ~plant, "tab:brown")]
    for label, where, color in picks:
        if where.any():
            y, x = np.argwhere(where)[len(np.argwhere(where)) // 2]
            axes[3].plot(wl, orig[:, y, x], color=color, label=f"{label} ({y},{x}) original")
            axes[3].plot(wl, rec[:, y, x], color=color, ls="--", label=f"{label} reconstructed")
            axes[3].plot(wl, near[:, y, x], color=color, ls=":", lw=1,
                         label=f"{label} nearest visible pixel")
            for ax in axes[:3]:
                ax.plot(x, y, "o", mfc="none", mec=color, ms=8)
    axes[3].set(xlabel="wavelength (nm)", ylabel="reflectance",
                title="spectra of masked pixels")
    axes[3].legend(fontsize=7)
    if scores is not None:
        values = [scores.rmse_of(p) for p in scores.predictors]
        n = scores.mse_all.shape[1]
        colors = ["tab:blue"] + ["tab:gray"] * (len(values) - 1)
        axes[4].barh([p.replace("_", " ") for p in scores.predictors], values, color=colors)
        axes[4].invert_yaxis()
        for y, v in enumerate(values):
            axes[4].text(v, y, f" {v:.4f}", va="center", fontsize=8)
        axes[4].set(xlabel="RMSE on hidden pixels (reflectance)",
                    title=f"all {n} cube{'s' if n != 1 else ''}: model vs inpainting")
        axes[4].set_xlim(0, max(values) * 1.3)
    fig.suptitle(f"{g['sample'][k]}: MAE reconstruction")
    return save_figure(fig, out)
