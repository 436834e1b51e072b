"""`dchag show appl.zarr`: the first look a plant scientist takes at a cube."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.data.zarr_store import open_artifact
from pipelines.errors import DchagError
from pipelines.figures import save_figure

RGB_NM = (640.0, 550.0, 470.0)


def rgb_composite(cube: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """(bands, y, x) → (y, x, 3) from the bands nearest 640/550/470 nm, 2–98% stretched."""
    idx = [int(np.argmin(np.abs(wavelengths - nm))) for nm in RGB_NM]
    rgb = np.moveaxis(cube[idx].astype(np.float32), 0, -1)
    lo, hi = np.percentile(rgb, [2, 98])
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)


def show_sample(store: Path, sample: int, out: Path) -> Path:
    g = open_artifact(store, "appl")
    n = g["cube"].shape[0]
    if not 0 <= sample < n:
        raise DchagError(f"--sample {sample} out of range (the store has {n} samples)",
                         path=store)
    cube = g["cube"][sample].astype(np.float32)
    mask = g["mask"][sample].astype(bool)
    wl = g["wavelength"][:]
    name = str(g["sample"][sample])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    axes[0].imshow(rgb_composite(cube, wl))
    axes[0].set_title(f"{name}: RGB from {', '.join(f'{x:.0f}' for x in RGB_NM)} nm")
    axes[1].imshow(mask, cmap="Greens", vmin=0, vmax=1)
    axes[1].set_title(f"plant mask (NDVI): {mask.mean():.1%} of pixels")
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    for part, label, color in ((mask, "plant", "tab:green"), (~mask, "background", "tab:brown")):
        if part.any():
            spectra = cube[:, part]
            mean, std = spectra.mean(axis=1), spectra.std(axis=1)
            axes[2].plot(wl, mean, color=color, label=f"{label} ({part.sum()} px)")
            axes[2].fill_between(wl, mean - std, mean + std, color=color, alpha=0.2)
    for nm, text in ((550, "green peak"), (700, "red edge")):
        axes[2].axvline(nm, color="grey", lw=0.8, ls=":")
        axes[2].text(nm + 3, axes[2].get_ylim()[1] * 0.95, text, color="grey", fontsize=8)
    axes[2].set_xlabel("wavelength (nm)")
    axes[2].set_ylabel("reflectance")
    axes[2].set_title("mean spectrum ± 1 std")
    axes[2].legend(loc="center right")
    return save_figure(fig, out, dpi=110)
