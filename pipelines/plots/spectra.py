"""`spectra.png` of `dchag eval masks`: where a plant scientist looks first.

Left, true spectra of a few hidden plant pixels beside the model's reconstruction and
the best baseline's (by spectral angle), each labelled with its angle; right, the
relative error per band of every predictor over all scored cubes and draws — which part
of the spectrum each one gets wrong.
"""

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

PIXELS = 3


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def plot_spectra(recon: Path, data: Path, index: int, out: Path, scores: MaskScores) -> Path:
    rg = open_artifact(recon, "reconstruction")
    g = open_artifact(data, "appl")
    r0, c0, h, w = rg.attrs["crop"]
    wl = rg["wavelength"][:]
    k = matching_samples(rg, g, recon, data)[index]
    orig = g["cube"].get_orthogonal_selection(
        (k, matching_bands(g["wavelength"][:], wl, data), slice(r0, r0 + h),
         slice(c0, c0 + w))).astype(np.float64)
    rec = rg["reconstruction"][index].astype(np.float64)
    hidden = rg["masked"][index].astype(bool)
    where = np.argwhere(hidden & g["mask"][k, r0:r0 + h, c0:c0 + w].astype(bool))
    if not len(where):
        where = np.argwhere(hidden)
    best = scores.best_baseline("sam")
    other = inpaint(best, orig, hidden)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), dpi=110,
                             gridspec_kw={"width_ratios": [1.3, 1]})
    colors = plt.get_cmap("tab10").colors
    picks = where[np.linspace(0, len(where) - 1, min(PIXELS, len(where))).astype(int)]
    for color, (y, x) in zip(colors, picks, strict=False):
        true = orig[:, y, x]
        axes[0].plot(wl, true, color=color, lw=1.6, label=f"({y},{x}) true")
        axes[0].plot(wl, rec[:, y, x], color=color, ls="--",
                     label=f"model, SAM {_angle(true, rec[:, y, x]):.1f}°")
        axes[0].plot(wl, other[:, y, x], color=color, ls=":", lw=1.2,
                     label=f"{best.replace('_', ' ')}, SAM {_angle(true, other[:, y, x]):.1f}°")
    axes[0].set(xlabel="wavelength (nm)", ylabel="reflectance",
                title=f"{g['sample'][k]}: hidden plant pixels")
    axes[0].legend(fontsize=7, ncol=1)
    for i, name in enumerate(scores.predictors):
        axes[1].plot(wl, scores.band_rel_all[i], lw=2.0 if i == 0 else 1.0,
                     color="tab:blue" if i == 0 else None,
                     label=f"{name.replace('_', ' ')} (mean SAM {scores.sam_of(name):.2f}°)")
    axes[1].set(xlabel="wavelength (nm)", ylabel="RMSE / mean reflectance",
                title=f"relative error per band: {scores.cubes} cubes × {scores.draws} "
                      f"mask draw{'s' if scores.draws != 1 else ''}", yscale="log")
    axes[1].legend(fontsize=7)
    return save_figure(fig, out)
