"""Writing figures: laid out, saved under a temporary name, then moved into place, so a
crash never leaves a truncated PNG where an earlier good one stood."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def save_figure(fig: Figure, out: Path, dpi: float | None = None) -> Path:
    out = Path(out)
    if fig.get_layout_engine() is None:  # figures may choose their own (constrained)
        fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(out)
    return out
