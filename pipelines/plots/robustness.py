"""The robustness figure: RMSE with inputs missing, over RMSE with every input, for each
missing channel or group (rows) and each scored channel and lead (columns)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from pipelines.data.times import format_lead
from pipelines.eval.robustness import Robustness
from pipelines.figures import save_figure


def plot_robustness(r: Robustness, path: Path) -> None:
    ratio = r.ratio[1:]  # without the "none" row (all ones)
    rows = r.missing[1:]
    cols = [f"{c}\n{format_lead(lead)}" for c in r.channels for lead in r.leads]
    grid = ratio.transpose(0, 2, 1).reshape(len(rows), -1)  # (missing, channel × lead)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 1.2 + 0.32 * len(rows)),
                           layout="constrained")
    # colours saturate at 3× (an output whose own input is missing can be far worse;
    # the numbers say by how much)
    top = min(3.0, max(1.05, float(np.nanmax(grid))))
    im = ax.imshow(np.clip(grid, None, top), cmap="RdBu_r", aspect="auto",
                   norm=TwoSlopeNorm(vcenter=1.0, vmin=min(0.95, float(np.nanmin(grid))),
                                     vmax=top))
    ax.set_xticks(range(len(cols)), cols, fontsize=7)
    ax.set_yticks(range(len(rows)), [m if len(m) < 40 else m[:37] + "…" for m in rows],
                  fontsize=7)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if grid[i, j] > 0.7 * top + 0.3 else "black")
    ax.set_xlabel("scored channel and lead")
    ax.set_ylabel("missing at inference")
    fig.colorbar(im, ax=ax, label="RMSE missing / RMSE with every input (colour ≤ 3)")
    ax.set_title("Skill with inputs missing (global RMSE ratio; >1 is worse)", fontsize=9)
    save_figure(fig, path)
