"""Figures shaped like the D-CHAG paper's: memory and throughput per rank vs channels."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipelines.plots.save import save_figure


def _label(r: dict) -> str:
    return "baseline (pure TP)" if r["variant"] == "baseline" else \
        f"D-CHAG-{r['variant']} tree {r['tree']}"


def plot_vs_channels(records: list[dict], field: str, ylabel: str, out: Path,
                     scale: float = 1.0) -> Path:
    """One panel per (preset, tp); one line per variant/tree."""
    panels = sorted({(r["preset"], r["tp"]) for r in records}, key=str)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), dpi=120,
                             squeeze=False)
    for ax, (preset, tp) in zip(axes[0], panels, strict=True):
        lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for r in records:
            if (r["preset"], r["tp"]) == (preset, tp) and r.get("fits", True):
                lines[_label(r)].append((r["channels"], r[field] * scale))
        for name, pts in sorted(lines.items()):
            pts.sort()
            style = "k--" if name.startswith("baseline") else "-"
            ax.plot(*zip(*pts, strict=True), style, marker="o", ms=4, label=name)
        ax.set(title=f"{preset}, tp {tp}", xlabel="channels", ylabel=ylabel)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, out)
