"""Forecast figures: maps of forecast, truth and error; scores against lead time."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

from pipelines.data.channels import pretty_units
from pipelines.data.times import format_lead
from pipelines.eval.forecast import FORECASTERS, ForecastScores
from pipelines.eval.forecast_store import channel_units, init_time_text
from pipelines.figures import save_figure

STYLE = {"model": "o-", "persistence": "s--", "climatology": "^:",
         "climatology_time_mean": "v-."}
COLUMNS = 4  # score panels per row before wrapping


def degrees(axis: str):
    """Tick labels like 30°N, 60°W."""
    def fmt(value: float, _pos: int) -> str:
        if axis == "lat":
            return "0°" if value == 0 else f"{abs(value):g}°{'N' if value > 0 else 'S'}"
        v = (value + 180) % 360 - 180
        return "0°" if v == 0 else ("180°" if abs(v) == 180 else
                                    f"{abs(v):g}°{'E' if v > 0 else 'W'}")
    return FuncFormatter(fmt)


def map_axes(ax, lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float]:
    """Equirectangular axes (a degree of latitude as long as one of longitude)."""
    dlat = float(np.diff(lat).mean()) if lat.size > 1 else 1.0
    dlon = float(np.diff(lon).mean()) if lon.size > 1 else 1.0
    extent = (float(lon[0] - dlon / 2), float(lon[-1] + dlon / 2),
              float(lat[0] - dlat / 2), float(lat[-1] + dlat / 2))
    ax.xaxis.set_major_formatter(degrees("lon"))
    ax.yaxis.set_major_formatter(degrees("lat"))
    ax.set_xticks(np.arange(0, 361, 90))
    ax.set_yticks(np.arange(-60, 61, 30))
    return extent


def plot_maps(res: ForecastScores, truth: np.ndarray, channel: str, init_pos: int,
              lead_pos: int, out: Path) -> Path:
    """Forecast, truth and error of one channel for one init time and lead."""
    c = res.channels.index(channel)
    unit = pretty_units(channel_units(res.channels)[c])
    f = res.predictions[init_pos, lead_pos, c]
    err = f - truth
    lim = float(np.nanmax(np.abs(err))) or 1.0
    lo, hi = float(np.nanmin(truth)), float(np.nanmax(truth))
    fig, axes = plt.subplots(1, 3, figsize=(15, 2.9), dpi=110, layout="constrained")
    for ax, field, title, kw in (
            (axes[0], f, "forecast", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
            (axes[1], truth, "truth", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
            (axes[2], err, "forecast − truth", {"vmin": -lim, "vmax": lim, "cmap": "RdBu_r"})):
        extent = map_axes(ax, res.lat, res.lon)
        im = ax.imshow(field, origin="lower", extent=extent, aspect="equal", **kw)
        ax.set(title=title)
        fig.colorbar(im, ax=ax, shrink=0.8, label=unit)
    fig.suptitle(f"{channel}: init {init_time_text(res.init_hours[init_pos])} UTC, lead "
                 f"{format_lead(res.leads[lead_pos])}")
    return save_figure(fig, out)


def plot_scores_vs_lead(res: ForecastScores, out: Path) -> Path:
    """RMSE (zero-based) and wACC (shared range) against lead, per channel, wrapped into
    rows; each point is labelled with the number of init times behind it."""
    n = len(res.channels)
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(3.6 * cols, 5.4 * rows), dpi=110,
                             squeeze=False, layout="constrained")
    days = np.array(res.leads) / 24.0
    counts = [len(p.inits) for p in res.plans]
    units = [pretty_units(u) for u in channel_units(res.channels)]
    acc_lo = min(0.0, float(np.nanmin(res.scores["wacc"][:2, :, :, 0]))) \
        if np.isfinite(res.scores["wacc"][:2, :, :, 0]).any() else 0.0
    for c, name in enumerate(res.channels):
        r, col = divmod(c, cols)
        for k, metric in enumerate(("rmse", "wacc")):
            ax = axes[2 * r + k][col]
            for fi, forecaster in enumerate(FORECASTERS):
                values = res.scores[metric][fi, :, c, 0]
                if np.isfinite(values).any():
                    ax.plot(days, values, STYLE[forecaster], label=forecaster, ms=4)
            if metric == "rmse":
                ax.set_ylim(bottom=0)
                for x, n_inits in zip(days, counts, strict=True):
                    ax.annotate(f"n={n_inits}", (x, 0), xytext=(0, 3),
                                textcoords="offset points", ha="center", fontsize=6,
                                color="0.4")
                ax.set(title=name, ylabel=f"RMSE ({units[c]})")
            else:
                ax.set_ylim(acc_lo, 1.0)
                ax.set(ylabel="wACC")
            ax.set(xlabel="lead (days)")
            ax.margins(x=0.08)
            ax.set_xticks(days, [format_lead(h) for h in res.leads], fontsize=7)
            ax.grid(alpha=0.3)
    for c in range(n, rows * cols):
        r, col = divmod(c, cols)
        axes[2 * r][col].set_visible(False)
        axes[2 * r + 1][col].set_visible(False)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"scores vs lead — {res.convention} convention, {res.period}")
    return save_figure(fig, out)
