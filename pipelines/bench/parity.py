"""Quality parity of D-CHAG against the baseline, over seeds: the paper's "<1 % loss".

One seed cannot support a claim of parity: retraining the same forecaster with another
seed moves its test RMSE by tens of percent. So every variant is trained with the same
data, steps and seeds, and compared *paired by seed* (same initialisation stream, same
batches):

    r_s = m(variant, seed s) / m(baseline, seed s)          (lower m is better)

and the claim is the mean of r_s with a bootstrap 95 % interval over seeds (resampling
seeds with replacement; with n seeds there are only C(2n−1, n) distinct resamples, so the
interval is coarse for n = 3 and says so by its width). The seed-to-seed spread of the
baseline itself (its coefficient of variation) is reported beside it: a ratio interval
narrower than that spread is what pairing buys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.run.records import read_metrics

BOOTSTRAP = 10_000


def bootstrap_mean_interval(values: np.ndarray, level: float = 0.95, draws: int = BOOTSTRAP,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of `values` under resampling with replacement."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(draws, v.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass
class ParityTable:
    """One task's metric per (variant, seed); variants[0] is the reference."""

    task: str
    metric: str  # what `values` measures (lower is better)
    variants: list[str]
    seeds: list[int]
    values: np.ndarray  # (variant, seed)
    val_loss: np.ndarray  # (variant, seed): the final validation loss, for reference
    detail: dict[str, np.ndarray] = field(default_factory=dict)

    def ratios(self) -> np.ndarray:
        """(variant, seed): each variant over the reference, paired by seed."""
        return self.values / self.values[0:1]

    def summary(self) -> list[dict]:
        """Per variant: mean paired ratio, its interval, and the seed-to-seed spread."""
        rows = []
        ratios = self.ratios()
        for i, name in enumerate(self.variants):
            r = ratios[i]
            lo, hi = bootstrap_mean_interval(r)
            v = self.values[i]
            rows.append({"task": self.task, "variant": name, "metric": self.metric,
                         "mean": float(np.mean(v)), "seed_cv": float(np.std(v, ddof=1)
                                                                     / np.mean(v))
                         if v.size > 1 else float("nan"),
                         "ratio_mean": float(np.mean(r)), "ratio_lo": lo, "ratio_hi": hi})
        return rows


def last_val_loss(run: Path) -> float:
    """The run's last validation loss (NaN before the first validation)."""
    vals = [r["val_loss"] for r in read_metrics(run) if r.get("val_loss") is not None]
    return float(vals[-1]) if vals else float("nan")


def forecast_metric(scores: Path) -> tuple[float, np.ndarray]:
    """A forecast's skill summary — the mean over leads and channels of model RMSE over
    persistence RMSE (global) — and its model RMSE (lead, channel)."""
    import xarray as xr

    ds = xr.open_zarr(scores)
    rmse = ds["rmse"].sel(region="global")
    model = rmse.sel(forecaster="model").values
    return float(np.mean(model / rmse.sel(forecaster="persistence").values)), model
