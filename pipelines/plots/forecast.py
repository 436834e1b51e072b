"""Forecast figures: maps of forecast, truth and error; scores against lead time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.eval.forecast import METHODS, ForecastScores, init_time_text
from pipelines.plots.save import save_figure
from pipelines.train.config import format_lead

STYLE = {"model": "o-", "persistence": "s--", "climatology": "^:"}


def plot_maps(res: ForecastScores, truth: np.ndarray, channel: str, init_pos: int,
              lead_pos: int, out: Path) -> Path:
    """Forecast, truth and error of one channel for one init time and lead."""
    c = res.channels.index(channel)
    f = res.predictions[init_pos, lead_pos, c]
    err = f - truth
    lim = float(np.nanmax(np.abs(err))) or 1.0
    lo, hi = float(np.nanmin(truth)), float(np.nanmax(truth))
    extent = (float(res.lon[0]), float(res.lon[-1]), float(res.lat[0]), float(res.lat[-1]))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), dpi=110)
    for ax, field, title, kw in (
            (axes[0], f, "forecast", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
            (axes[1], truth, "truth", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
            (axes[2], err, "forecast − truth", {"vmin": -lim, "vmax": lim, "cmap": "RdBu_r"})):
        im = ax.imshow(field, origin="lower", extent=extent, aspect="auto", **kw)
        ax.set(title=title, xlabel="longitude", ylabel="latitude")
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(f"{channel}, init {init_time_text(res.init_hours[init_pos])}, "
                 f"lead {format_lead(res.leads[lead_pos])}")
    return save_figure(fig, out)


def plot_scores_vs_lead(res: ForecastScores, out: Path) -> Path:
    """RMSE and wACC against lead: model, persistence, climatology, per channel."""
    n = len(res.channels)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 5.6), dpi=110, squeeze=False)
    hours = np.array(res.leads) / 24.0
    for c, name in enumerate(res.channels):
        for row, metric in enumerate(("rmse", "wacc")):
            ax = axes[row][c]
            for m, method in enumerate(METHODS):
                values = res.scores[metric][m, :, c]
                if np.isfinite(values).any():
                    ax.plot(hours, values, STYLE[method], label=method, ms=4)
            ax.set(title=name if row == 0 else "", xlabel="lead (days)",
                   ylabel=("RMSE" if metric == "rmse" else "wACC") if c == 0 else "")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"scores vs lead ({res.convention} convention)")
    return save_figure(fig, out)
