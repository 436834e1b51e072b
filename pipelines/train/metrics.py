"""What a run records as it trains: `metrics.jsonl` while running, `metrics.zarr` and a
loss-curve PNG at every checkpoint and at the end.

The JSON-lines log is appended and flushed record by record, so a killed run loses at
most the records after its last checkpoint; `--resume` drops those (they will be
recomputed identically) and the curve continues unbroken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data.zarr_store import atomic_store, dims_array
from pipelines.fsops import write_atomic
from pipelines.run.records import METRICS, read_metrics

SCALARS = ("loss", "val_loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s",
           "tflops_per_rank", "mfu")


class MetricsLog:
    def __init__(self, run: Path, resume_step: int | None):
        self.path = Path(run) / METRICS
        self.records: list[dict[str, Any]] = [
            rec for rec in read_metrics(run)
            if resume_step is not None and rec["step"] <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

    def write_zarr(self, out: Path, attrs: dict[str, Any]) -> None:
        """A tidy table: one row per logged step; val loss where it was evaluated."""
        steps = np.array([r["step"] for r in self.records], dtype=np.int64)
        with atomic_store(Path(out)) as g:
            g.attrs.update(attrs)
            dims_array(g, "step", ["step"], data=steps, fill_value=None)
            for name in SCALARS:
                col = np.array([_num(r.get(name)) for r in self.records], dtype=np.float64)
                dims_array(g, name, ["step"], data=col, fill_value=None)
            ranks = max((len(r.get("peak_mem_bytes", [])) for r in self.records), default=0)
            mem = np.full((len(steps), ranks), np.nan)
            for i, r in enumerate(self.records):
                row = r.get("peak_mem_bytes", [])
                mem[i, :len(row)] = row
            dims_array(g, "peak_mem_bytes", ["step", "rank"], data=mem, fill_value=None)

    def plot(self, out: Path, title: str) -> None:
        # imported here: every rank imports this module, only rank 0 plots, once
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter

        from pipelines.figures import save_figure

        logged = [r for r in self.records if math.isfinite(_num(r.get("loss")))]
        steps, loss = [r["step"] for r in logged], [r["loss"] for r in logged]
        val = [(r["step"], r["val_loss"]) for r in self.records
               if r.get("val_loss") is not None]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
        # markers when there are few points: one logged step is still visible
        ax.plot(steps, loss, "o-" if len(steps) < 30 else "-", label="train", lw=1.2, ms=3)
        if val:
            ax.plot(*zip(*val, strict=True), "s-", label="validation", ms=3)
        ax.set(xlabel="step", ylabel="loss", title=title)
        values = loss + [v for _, v in val]
        if values and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")  # more than a decade: log, with plain tick labels
            plain = FuncFormatter(lambda v, _pos: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        else:
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, out)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)
