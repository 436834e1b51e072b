"""The scorecard figure: per channel and lead, every model's RMSE as a bar, this run's
highlighted, and how the protocols differ written across the top."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipelines.data.channels import pretty_units
from pipelines.data.times import format_lead
from pipelines.eval.forecast_store import channel_units
from pipelines.eval.scorecard import THIS_RUN, Row
from pipelines.figures import save_figure


def plot_scorecard(rows: list[Row], path: Path) -> None:
    panels = list(dict.fromkeys((r.channel, r.lead_h, r.metric) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    for ax, (channel, lead, metric) in zip(axes[0], panels, strict=True):
        mine = [r for r in rows if (r.channel, r.lead_h, r.metric) == (channel, lead, metric)]
        mine.sort(key=lambda r: r.value)
        colors = ["tab:red" if r.model == THIS_RUN else "tab:orange"
                  if r.source.startswith("measured") else
                  ("tab:gray" if r.differs else "tab:blue") for r in mine]
        ax.barh(range(len(mine)), [r.value for r in mine], color=colors)
        ax.set_yticks(range(len(mine)), [r.model for r in mine], fontsize=8)
        ax.invert_yaxis()
        for k, r in enumerate(mine):
            ax.text(r.value, k, f" {r.value:.4g}", va="center", fontsize=7)
        units = pretty_units(channel_units([channel])[0])
        ax.set_xlabel(f"global {metric.upper()} [{units}]")
        ax.set_title(f"{channel}, {format_lead(lead)}")
        ax.margins(x=0.18)
    differs = sorted({r.differs for r in rows if r.differs})
    title = ("Scorecard: this run (red) and its own persistence and climatology (orange) "
             "beside published scores")
    if differs:
        text = "Protocol differs — " + " | ".join(differs) + " (grey bars)"
        fig.suptitle(title + "\n" + "\n".join(textwrap.wrap(text, 120)), color="darkred",
                     fontsize=10)
    else:
        fig.suptitle(title + " (same protocol)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
