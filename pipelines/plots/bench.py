"""Figures shaped like the D-CHAG paper's: memory and throughput per rank vs channels."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipelines.figures import save_figure


def _label(r: dict) -> str:
    kind = "baseline (pure TP)" if r["variant"] == "baseline" else \
        f"D-CHAG-{r['variant']} tree {r['tree']}"
    return f"{kind}, {r.get('aggregation_kind', '')}".rstrip(", ")


def plot_vs_channels(records: list[dict], field: str, ylabel: str, out: Path,
                     scale: float = 1.0) -> Path:
    """One panel per (preset, tp, dp); one line per variant, tree and aggregation kind;
    the tested channel counts on the x axis, zero-based y so ratios read honestly."""
    panels = sorted({(r["preset"], r["tp"], r.get("dp", 1)) for r in records}, key=str)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), dpi=120,
                             squeeze=False)
    for ax, (preset, tp, dp) in zip(axes.flat, panels, strict=False):
        lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
        tested = set()
        for r in records:
            value = r.get(field, math.nan)
            if (r["preset"], r["tp"], r.get("dp", 1)) == (preset, tp, dp) and \
                    value is not None and math.isfinite(value):
                lines[_label(r)].append((r["channels"], value * scale))
                tested.add(r["channels"])
        for name, pts in sorted(lines.items()):
            pts.sort()
            style = "--" if name.startswith("baseline") else "-"
            ax.plot(*zip(*pts, strict=True), style, marker="o", ms=4, label=name)
        ax.set(title=f"{preset}, tp {tp}, dp {dp}", xlabel="channels", ylabel=ylabel)
        if tested:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(tested), [str(c) for c in sorted(tested)])
            ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, out)
