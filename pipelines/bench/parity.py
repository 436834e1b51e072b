"""Quality parity of D-CHAG against the baseline, over seeds: the paper's "<1 % loss".

One seed cannot support a claim of parity: retraining the same forecaster with another
seed moves its test RMSE by tens of percent. So every variant is trained with the same
data, steps and seeds, and compared *paired by seed* (same initialisation stream, same
batches):

    r_s = m(variant, seed s) / m(baseline, seed s)          (lower m is better)

The claim is tested on the log-ratios d_s = log r_s, as a statistician would sign it:
their mean with a paired t-interval (Student's t with n − 1 degrees of freedom), mapped
back to a ratio exp(mean), and a one-sided test of "loss < 1 %": H0 is a geometric-mean
ratio ≥ 1.01, rejected (the claim holds) when the one-sided 95 % upper bound
exp(mean + t₀.₉₅ · sd/√n) lies below 1.01. The percentile bootstrap over seeds is kept
beside it for continuity, but with few seeds it is not a confidence interval: with 3
seeds there are only 10 distinct resamples and the "interval" is the min–max of the
three ratios (about 75 % coverage), so fewer than `MIN_SEEDS` seeds come with a note.
The seed-to-seed spread of the baseline itself (its coefficient of variation) is reported
beside it: a ratio interval narrower than that spread is what pairing buys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from pipelines.run.records import read_metrics

BOOTSTRAP = 10_000
MIN_SEEDS = 5  # fewer: the intervals rest on too few ratios to be read as 95 %
LOSS_BOUND = 0.01  # the paper's "<1 % quality loss"


@dataclass(frozen=True)
class PairedTest:
    """The paired t-analysis of one variant's log-ratios against the reference."""

    ratio: float  # exp(mean log-ratio): the geometric-mean ratio
    lo: float  # two-sided 95 % t-interval, as ratios
    hi: float
    upper: float  # one-sided 95 % upper bound, as a ratio
    passed: bool  # upper < 1 + LOSS_BOUND: "less than 1 % loss" holds at 95 %
    seeds: int


def paired_t(ratios: np.ndarray, level: float = 0.95) -> PairedTest:
    """`ratios` (seed,): variant / reference, paired by seed; NaNs are dropped."""
    d = np.log(np.asarray(ratios, np.float64))
    d = d[np.isfinite(d)]
    n = d.size
    if n < 2:
        nan = float("nan")
        return PairedTest(float(np.exp(d.mean())) if n else nan, nan, nan, nan, False, n)
    mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
    two = float(stats.t.ppf(0.5 + level / 2, n - 1))
    one = float(stats.t.ppf(level, n - 1))
    upper = float(np.exp(mean + one * se))
    return PairedTest(float(np.exp(mean)), float(np.exp(mean - two * se)),
                      float(np.exp(mean + two * se)), upper, upper < 1 + LOSS_BOUND, n)


def few_seeds_note(seeds: int) -> str | None:
    """The note `bench parity` prints and stores with fewer than `MIN_SEEDS` seeds."""
    if seeds >= MIN_SEEDS:
        return None
    return (f"with {seeds} seeds the intervals are not 95 % confidence intervals: the "
            f"bootstrap's is the min–max of {seeds} ratios, and the t-interval rests on "
            f"{seeds - 1} degrees of freedom; use --seeds {MIN_SEEDS} or more for a claim")


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
        """Per variant: mean paired ratio with its bootstrap interval, the paired
        t-analysis of the log-ratios and its one-sided verdict, and the seed spread."""
        rows = []
        ratios = self.ratios()
        for i, name in enumerate(self.variants):
            r = ratios[i]
            lo, hi = bootstrap_mean_interval(r)
            v = self.values[i]
            t = paired_t(r)
            rows.append({"task": self.task, "variant": name, "metric": self.metric,
                         "mean": float(np.mean(v)), "seed_cv": float(np.std(v, ddof=1)
                                                                     / np.mean(v))
                         if v.size > 1 else float("nan"),
                         "ratio_mean": float(np.mean(r)), "ratio_lo": lo, "ratio_hi": hi,
                         "geo_ratio": t.ratio, "t_lo": t.lo, "t_hi": t.hi,
                         "upper_95": t.upper, "loss_below_1pct": bool(t.passed)})
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
