"""Normalisation statistics and day-of-year climatology, accumulated while writing.

The running sums live in the artifact (`stats_*`, `clim_*` arrays) so `--append` can
extend them exactly without rereading the store. Only time steps inside the training
years contribute, so evaluation years never leak into normalisation or climatology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr
from scipy.ndimage import uniform_filter1d

N_DOY = 366


def day_of_year_index(times: np.ndarray) -> np.ndarray:
    """0-based day of year (0..365) of datetime64 values."""
    t = times.astype("datetime64[D]")
    return (t - t.astype("datetime64[Y]")).astype(np.int64)


def in_years(times: np.ndarray, years: tuple[int, int] | None) -> np.ndarray:
    if years is None:
        return np.ones(times.shape, dtype=bool)
    y = times.astype("datetime64[Y]").astype(np.int64) + 1970
    return (y >= years[0]) & (y <= years[1])


@dataclass
class RunningStats:
    """Sums per channel (for mean/std) and per day-of-year and grid cell (climatology)."""

    total: np.ndarray  # (C,) float64
    total_sq: np.ndarray  # (C,)
    count: np.ndarray  # (C,)
    clim_sum: np.ndarray  # (366, C, H, W) float64
    clim_count: np.ndarray  # (366, C, H, W) int32

    @classmethod
    def zeros(cls, n_channels: int, grid: tuple[int, int]) -> RunningStats:
        c = n_channels
        return cls(np.zeros(c), np.zeros(c), np.zeros(c), np.zeros((N_DOY, c, *grid)),
                   np.zeros((N_DOY, c, *grid), dtype=np.int32))

    @classmethod
    def load(cls, group: zarr.Group) -> RunningStats:
        return cls(group["stats_sum"][:], group["stats_sumsq"][:], group["stats_count"][:],
                   group["clim_sum"][:], group["clim_count"][:])

    def update(self, times: np.ndarray, block: np.ndarray) -> None:
        """Add a block `(t, C, H, W)` of regridded fields at `times`."""
        valid = ~np.isnan(block)
        x = np.where(valid, block, 0.0).astype(np.float64)
        self.total += x.sum(axis=(0, 2, 3))
        self.total_sq += (x * x).sum(axis=(0, 2, 3))
        self.count += valid.sum(axis=(0, 2, 3))
        doy = day_of_year_index(times)
        np.add.at(self.clim_sum, doy, x)
        np.add.at(self.clim_count, doy, valid.astype(np.int32))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        n = np.maximum(self.count, 1)
        mean = self.total / n
        var = np.maximum(self.total_sq / n - mean**2, 0.0)
        return mean, np.sqrt(var)

    def climatology(self, window_days: int) -> np.ndarray:
        """Mean per day-of-year, smoothed over ±window days (circular); NaN where no data."""
        size = 2 * window_days + 1
        # Windowed means of sums and of counts; their ratio is the windowed mean of the data.
        s = uniform_filter1d(self.clim_sum, size, axis=0, mode="wrap")
        n = uniform_filter1d(self.clim_count.astype(np.float64), size, axis=0, mode="wrap")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0.5 / size, s / n, np.nan).astype(np.float32)
