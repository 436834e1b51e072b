"""Model − baseline, paired on the same cube and mask, with an interval that respects
that draws of one cube are not independent.

Each reconstructed sample is one (cube, mask draw). The difference model − baseline is
taken per sample (same hidden pixels for both), averaged, and given a 95 % interval by a
cluster bootstrap: whole cubes are resampled with replacement, every draw of a picked
cube kept with it. With a handful of held-out cubes the interval is wide, as it should
be: it says how much the answer could move on other plants, not on other masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Paired:
    mean: float  # model − baseline, mean over samples
    low: float  # 95 % cluster-bootstrap interval
    high: float
    wins: float  # share of samples where the model is lower (better)
    samples: int
    clusters: int

    def as_list(self) -> list[float]:
        return [self.mean, self.low, self.high, self.wins]


def paired_difference(model: np.ndarray, baseline: np.ndarray, clusters: np.ndarray,
                      seed: int = 0) -> Paired:
    """`model`, `baseline` (sample,) scores where lower is better; `clusters` (sample,)
    labels the cube each sample is from. NaN samples (no pixels scored) are left out."""
    diff = np.asarray(model, np.float64) - np.asarray(baseline, np.float64)
    ok = np.isfinite(diff)
    diff, labels = diff[ok], np.asarray(clusters)[ok]
    if not diff.size:
        return Paired(*(float("nan"),) * 4, 0, 0)
    groups = [diff[labels == c] for c in dict.fromkeys(labels.tolist())]
    sums = np.array([g.sum() for g in groups])
    counts = np.array([g.size for g in groups])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(groups), size=(RESAMPLES, len(groups)))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Paired(float(diff.mean()), float(low), float(high), float((diff < 0).mean()),
                  int(diff.size), len(groups))
