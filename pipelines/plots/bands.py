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

COLOURS = {"model_greedy": "tab:red", "low_rank_greedy": "tab:purple",
           "evenly_spaced": "tab:blue", "pca_loadings": "tab:green"}


def plot_bands(s: BandStudy, out: Path) -> Path:
    fig, (top, mid, bottom) = plt.subplots(
        3, 1, figsize=(8, 8.5), gridspec_kw={"height_ratios": [3, 1.2, 3]})
    centres = s.edges.mean(axis=1)
    width = float(np.diff(s.edges, axis=1).mean())
    top.bar(centres, s.group_rmse, width=0.9 * width, color="0.6")
    top.set_ylabel("RMSE with the group absent")
    top.set_title("band-group importance: the model's whole-spectrum error without each group")
    for m, name in enumerate(PICKERS):
        picked = s.wavelength[s.picks[m, -1][s.picks[m, -1] >= 0]]
        mid.scatter(picked, np.full(len(picked), m), marker="|", s=250, color=COLOURS[name])
    mid.set_yticks(range(len(PICKERS)), [n.replace("_", " ") for n in PICKERS], fontsize=8)
    mid.set_ylim(len(PICKERS) - 0.5, -0.5)
    mid.set_title(f"the {s.max_k} bands each method keeps", fontsize=10)
    for ax in (top, mid):
        ax.set_xlim(s.edges[0, 0] - width / 2, s.edges[-1, 1] + width / 2)
    mid.set_xlabel("wavelength (nm)")
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
    bottom.set_title(f"{len(s.sources)} held-out cubes: the whole spectrum from k bands "
                     "(solid: the model, dashed: low-rank fit)", fontsize=10)
    bottom.legend(fontsize=7, ncol=2)
    return save_figure(fig, out)
