"""`bands.png` of `dchag eval bands`: where the information sits in the spectrum.

Top, each band group's importance (the model's RMSE over the whole spectrum with that
group absent) over wavelength, the picks of each method at the largest k marked below
it; bottom, RMSE against the number of bands kept, per picker and reconstructor — the
curve a sensor designer reads the cost of each band off.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.eval.band_importance import PICKERS, RECONSTRUCTORS, BandStudy
from pipelines.figures import save_figure

COLOURS = {"model_greedy": "tab:red", "evenly_spaced": "tab:blue",
           "pca_loadings": "tab:green"}


def plot_bands(s: BandStudy, out: Path) -> Path:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7))
    centres = s.edges.mean(axis=1)
    width = float(np.diff(s.edges, axis=1).mean())
    top.bar(centres, s.group_rmse, width=0.9 * width, color="0.6",
            label="model RMSE with the group absent")
    low = -0.12 * float(np.nanmax(s.group_rmse))
    for m, name in enumerate(PICKERS):
        picked = s.wavelength[s.picks[m, -1][s.picks[m, -1] >= 0]]
        top.scatter(picked, np.full(len(picked), low * (1 + 0.5 * m)), marker="|", s=200,
                    color=COLOURS[name], label=f"{name.replace('_', ' ')} ({s.max_k} bands)")
    top.axhline(0, color="k", lw=0.5)
    top.set_xlabel("wavelength (nm)")
    top.set_ylabel("RMSE (reflectance)")
    top.set_title("band-group importance and the bands each method keeps")
    top.legend(fontsize=7, loc="upper right")
    ks = np.arange(1, s.max_k + 1)
    for m, name in enumerate(PICKERS):
        for r, rec in enumerate(RECONSTRUCTORS):
            bottom.plot(ks, s.rmse[m, r], color=COLOURS[name], marker="o",
                        ls="-" if rec == "model" else "--",
                        label=f"{name.replace('_', ' ')}, rebuilt by {rec.replace('_', ' ')}")
    bottom.set_yscale("log")
    bottom.set_xlabel("bands kept (k)")
    bottom.set_ylabel("RMSE, whole spectrum")
    bottom.set_xticks(ks)
    bottom.set_title(f"{len(s.sources)} held-out cubes: the whole spectrum from k bands")
    bottom.legend(fontsize=7)
    return save_figure(fig, out)
