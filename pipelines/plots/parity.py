"""Parity figure: each variant's metric over the reference's, paired by seed — every seed's
ratio as a point, the paired t-interval and the one-sided bound the verdict rests on."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.bench.parity import ParityTable
from pipelines.figures import save_figure


def plot_parity(tables: list[ParityTable], out: Path) -> Path:
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4.2), dpi=110,
                             squeeze=False)
    for ax, t in zip(axes[0], tables, strict=True):
        ratios = t.ratios()
        rows = t.summary()
        for i in range(len(t.variants)):
            ax.plot(np.full(len(t.seeds), i), ratios[i], "o", mfc="none", color="tab:gray",
                    label="one seed" if i == 1 else None)
            if i:
                r = rows[i]
                g = r["geo_ratio"]
                ax.errorbar(i + 0.15, g, yerr=[[g - r["t_lo"]], [r["t_hi"] - g]],
                            fmt="s", color="tab:blue", capsize=4,
                            label="geometric mean, paired t 95 %" if i == 1 else None)
                ax.plot(i + 0.15, r["upper_95"], "v", color="tab:red",
                        label="one-sided 95 % bound" if i == 1 else None)
                verdict = "<1 % loss: pass" if r["loss_below_1pct"] else "<1 % loss: fail"
                ax.annotate(f"{g:.3f}\n[{r['t_lo']:.3f}, {r['t_hi']:.3f}]\n{verdict}",
                            (i + 0.22, g), fontsize=7, va="center")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhspan(0.99, 1.01, color="tab:green", alpha=0.12, label="±1 %")
        ax.set_xticks(range(len(t.variants)), t.variants)
        ax.set_xlim(-0.5, len(t.variants) - 0.2)
        ax.set(ylabel=f"metric / {t.variants[0]} (same seed; lower is better)",
               title=f"{t.task}: {len(t.seeds)} seeds; {t.variants[0]} seed CV "
                     f"{rows[0]['seed_cv']:.1%}")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("D-CHAG quality parity, paired by seed", fontsize=10)
    return save_figure(fig, out)
