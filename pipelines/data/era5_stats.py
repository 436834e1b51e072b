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

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zarr

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


SMOOTH_BYTES = 32 * 2**20  # float64 working set per smoothing pass (a few channels)


class Climatology:
    """The climatology arrays of an open store: sums, counts and the smoothed result."""

    def __init__(self, group: zarr.Group):
        self.g = group
        self.hours = [int(h) for h in group["hour"][:]]
        self.touched = np.zeros((N_DOY, len(self.hours)), bool)  # slabs `add` changed

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
            self.touched[d, h] = True
            x = block[ks]
            valid = np.isfinite(x)
            s[d, h] = s[d, h] + np.where(valid, x, 0.0).sum(axis=0, dtype=np.float64)
            n[d, h] = n[d, h] + valid.sum(axis=0, dtype=np.int32)

    def smooth(self, window: int, threads: int = 1, everything: bool = False) -> None:
        """Recompute `climatology` from the sums: windowed weighted means per hour.

        Only the days within the window of a slab `add` changed are recomputed (and only
        their window of sums read): appending a month to decades rewrites ~90 days, not
        366. The hours run in `threads` threads (array work and zarr I/O release the GIL).
        """
        out = self.g["climatology"]
        half = window // 2

        def one_hour(h: int) -> None:
            changed = np.ones(N_DOY, bool) if everything else self.touched[:, h]
            if not changed.any():
                return
            affected = _dilate(changed, half)
            needed = _dilate(affected, half)
            days = np.flatnonzero(needed)
            keep = np.flatnonzero(affected)
            shape = (N_DOY, *self.g["clim_sum"].shape[2:])  # (day, channel, lat, lon)
            sums = np.zeros(shape)
            counts = np.zeros(shape, np.int32)
            sums[days] = self.g["clim_sum"].get_orthogonal_selection((days, h))
            counts[days] = self.g["clim_count"].get_orthogonal_selection((days, h))
            values = np.empty((keep.size, *shape[1:]), np.float32)
            step = max(1, SMOOTH_BYTES // (N_DOY * int(np.prod(shape[2:])) * 8))
            for c0 in range(0, shape[1], step):  # a few channels at a time: bounded memory
                part = slice(c0, c0 + step)
                s = circular_smooth(sums[:, part], window)
                n = circular_smooth(counts[:, part], window)
                present = n > 1e-6  # running sums leave ~1e-13 where there were no data
                with np.errstate(invalid="ignore", divide="ignore"):
                    values[:, part] = np.where(present, s / np.where(present, n, 1.0),
                                               np.nan)[keep]
            out.set_orthogonal_selection((keep, h), values)

        with ThreadPoolExecutor(max(1, threads)) as ex:
            list(ex.map(one_hour, range(len(self.hours))))


def _dilate(days: np.ndarray, half: int) -> np.ndarray:
    """Days within `half` of a marked day, round the year."""
    if half == 0 or days.all():
        return days.copy()
    marked = np.flatnonzero(days)
    out = np.zeros_like(days)
    for k in range(-half, half + 1):
        out[(marked + k) % days.size] = True
    return out


def _circular_box(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """y[d] = Σ_{j<length} x[(d + start + j) mod n] along axis 0, as a sliding sum: one
    day enters and one leaves per step (two vector operations per day)."""
    n = x.shape[0]
    y = np.empty_like(x)
    y[0] = x[np.arange(start, start + length) % n].sum(axis=0)
    for d in range(1, n):
        np.add(y[d - 1], x[(d + start + length - 1) % n], out=y[d])
        y[d] -= x[(d + start - 1) % n]
    return y


def circular_smooth(x: np.ndarray, window: int) -> np.ndarray:
    """WeatherBench 2's triangular window over the days of the year, wrapping round:
    Σ_k (1 − |k|/H) x[d + k] for |k| < H = window // 2 — two box filters of length H
    in a row (O(n), not O(n · window)); `window_weights` gives the same weights."""
    x = np.asarray(x, np.float64)
    half = window // 2
    if half == 0:
        return x.copy()
    a = half // 2
    return _circular_box(_circular_box(x, -a, half), -(half - 1 - a), half) / half
