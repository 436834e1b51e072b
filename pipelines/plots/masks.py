"""Reconstruction figure: RGB of original / masked input / reconstruction, and spectra."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.data.zarr_store import open_artifact
from pipelines.eval.masks import matching_bands, matching_samples
from pipelines.plots.appl import rgb_composite
from pipelines.plots.save import save_figure


def plot_reconstruction(recon: Path, data: Path, index: int, out: Path) -> Path:
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
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), dpi=110,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.7]})
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
            for ax in axes[:3]:
                ax.plot(x, y, "o", mfc="none", mec=color, ms=8)
    axes[3].set(xlabel="wavelength (nm)", ylabel="reflectance",
                title="spectra of masked pixels")
    axes[3].legend(fontsize=7)
    fig.suptitle(f"{g['sample'][k]}: MAE reconstruction")
    return save_figure(fig, out)
