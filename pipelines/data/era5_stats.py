"""Normalisation statistics and the hour-of-day climatology, accumulated while writing.

Two kinds of running sums live in the artifact, so `--append` extends them exactly
without rereading the store:

- per time step and channel: sum, sum of squares and count of the field
  (`stats_sum(time, channel)`, …). Mean and std over *any* set of times follow exactly,
  so a training run normalises with its own training period, never the evaluation one.
- per (day of year, hour of day, channel, lat, lon): sum and count over the training
  years (`clim_sum`, `clim_count`). The climatology follows WeatherBench 2: for each
  hour, a weighted mean over a window of days (61 by default) with linearly decaying
  (triangular) weights, wrapping around the year, where day 366 of a non-leap year takes
  that year's day 365. It is recomputed from the sums after every write.

The climatology sums are read and written one (day, hour) slab at a time, so memory is
bounded by the time block being written, whatever the length of the record.
"""

from __future__ import annotations

import numpy as np
import zarr
from scipy.ndimage import correlate1d

N_DOY = 366
DEFAULT_WINDOW = 61
DEFAULT_HOUR_STEP = 6


def day_of_year_index(times: np.ndarray) -> np.ndarray:
    """0-based day of year (0..365) of datetime64 values."""
    t = times.astype("datetime64[D]")
    return (t - t.astype("datetime64[Y]")).astype(np.int64)


def hour_of_day(times: np.ndarray) -> np.ndarray:
    return (times.astype("datetime64[h]").astype(np.int64) % 24).astype(np.int64)


def _is_leap(times: np.ndarray) -> np.ndarray:
    year = times.astype("datetime64[Y]").astype(np.int64) + 1970
    return (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))


def in_years(times: np.ndarray, years: tuple[int, int] | None) -> np.ndarray:
    if years is None:
        return np.ones(times.shape, dtype=bool)
    y = times.astype("datetime64[Y]").astype(np.int64) + 1970
    return (y >= years[0]) & (y <= years[1])


def window_weights(size: int) -> np.ndarray:
    """WeatherBench 2's linearly decaying weights over `size` (odd) days; the end points
    weigh zero, so 61 days reach 29 days either side."""
    if size == 1:
        return np.ones(1)
    half = size // 2
    return np.concatenate([np.linspace(0, 1, half + 1), np.linspace(1, 0, half + 1)[1:]])


def field_sums(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per time step and channel: sum, sum of squares and count of finite values of a
    block (t, C, H, W), in float64."""
    valid = np.isfinite(block)
    x = np.where(valid, block, 0.0).astype(np.float64)
    return x.sum(axis=(2, 3)), (x * x).sum(axis=(2, 3)), valid.sum(axis=(2, 3))


def mean_std(total: np.ndarray, total_sq: np.ndarray, count: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std from sums over time steps (t, C) → (C,)."""
    n = np.maximum(count.sum(axis=0), 1)
    mean = total.sum(axis=0) / n
    var = np.maximum(total_sq.sum(axis=0) / n - mean**2, 0.0)
    return mean, np.sqrt(var)


class Climatology:
    """The climatology arrays of an open store: sums, counts and the smoothed result."""

    def __init__(self, group: zarr.Group):
        self.g = group
        self.hours = [int(h) for h in group["hour"][:]]

    @staticmethod
    def create(group: zarr.Group, n_channels: int, grid: tuple[int, int], hour_step: int,
               dims_array) -> None:
        hours = np.arange(0, 24, hour_step)
        shape = (N_DOY, hours.size, n_channels, *grid)
        chunks = (1, 1, n_channels, *grid)
        dims = ["dayofyear", "hour", "channel", "lat", "lon"]
        long_names = {"clim_sum": "sum of the fields at this day of year and hour",
                      "clim_count": "number of fields summed",
                      "climatology": "WeatherBench 2 climatology: windowed mean per day of "
                                     "year and hour of day"}
        for name, dtype in (("clim_sum", "f8"), ("clim_count", "i4"), ("climatology", "f4")):
            a = dims_array(group, name, dims, shape=shape, chunks=chunks, dtype=dtype,
                           fill_value=0 if name != "climatology" else np.nan)
            a.attrs["long_name"] = long_names[name]
            if name == "climatology":
                a.attrs["coordinates"] = "channel_units"
        dims_array(group, "dayofyear", ["dayofyear"], data=np.arange(1, N_DOY + 1,
                                                                     dtype=np.int32),
                   fill_value=None).attrs["long_name"] = "day of year (1 = 1 January)"
        dims_array(group, "hour", ["hour"], data=hours.astype(np.int32), fill_value=None
                   ).attrs["units"] = "hours"

    def add(self, times: np.ndarray, block: np.ndarray) -> None:
        """Add fields (t, C, H, W) at `times` to the sums of their (day, hour) slabs;
        times at other hours of day than the climatology's are not part of it."""
        hour_pos = {h: i for i, h in enumerate(self.hours)}
        doy, hour, leap = day_of_year_index(times), hour_of_day(times), _is_leap(times)
        slabs: dict[tuple[int, int], list[int]] = {}
        for k in range(times.size):
            if int(hour[k]) not in hour_pos:
                continue
            h = hour_pos[int(hour[k])]
            slabs.setdefault((int(doy[k]), h), []).append(k)
            if not leap[k] and doy[k] == 364:  # WB2 fills day 366 with day 365
                slabs.setdefault((365, h), []).append(k)
        s, n = self.g["clim_sum"], self.g["clim_count"]
        for (d, h), ks in sorted(slabs.items()):
            x = block[ks]
            valid = np.isfinite(x)
            s[d, h] = s[d, h] + np.where(valid, x, 0.0).sum(axis=0, dtype=np.float64)
            n[d, h] = n[d, h] + valid.sum(axis=0, dtype=np.int32)

    def smooth(self, window: int) -> None:
        """Recompute `climatology` from the sums: windowed weighted means per hour."""
        w = window_weights(window)
        out = self.g["climatology"]
        for h in range(len(self.hours)):
            s = correlate1d(self.g["clim_sum"][:, h], w, axis=0, mode="wrap")
            n = correlate1d(self.g["clim_count"][:, h].astype(np.float64), w, axis=0,
                            mode="wrap")
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, h] = np.where(n > 0, s / np.where(n > 0, n, 1), np.nan
                                     ).astype(np.float32)
