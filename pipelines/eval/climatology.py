"""The climatology that ACC and the climatology forecast are measured against.

`era5.zarr` holds one per (day of year, hour of day) — WeatherBench 2's definition — as
exact sums over the store's climatology years. A run holds out validation and test
periods; when the store's sums include them, evaluation removes their contributions
(read from the held-out times alone) and smooths again, so the reference is the
climatology of the run's *training* period and no scored time informs its own baseline.

Stores written by older dchag versions hold one per day of year only; they are still
read, with a note that their ACC counts the diurnal cycle as skill.
"""

from __future__ import annotations

import warnings

import numpy as np
import zarr

from pipelines.data.era5_stats import (
    N_DOY,
    _is_leap,
    day_of_year_index,
    hour_of_day,
    in_years,
    window_weights,
)
from pipelines.data.times import EPOCH
from pipelines.notes import note


class StoreClimatology:
    """Climatology fields of the store, optionally without the contributions of
    `exclude` (hours since 1970: times the climatology must not have seen)."""

    def __init__(self, group: zarr.Group, channel_index: list[int], where: object,
                 exclude: np.ndarray | None = None):
        self.group, self.arr = group, group["climatology"]
        self.index = channel_index
        dims = self.arr.attrs.get("_ARRAY_DIMENSIONS", [])
        self.hours = [int(h) for h in group["hour"][:]] if "hour" in dims else None
        self.removed = 0
        self._corr: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._smoothed: dict[int, dict[int, np.ndarray]] = {}
        self._time_mean: np.ndarray | None = None
        if self.hours is None:
            note(f"{where}: this store's climatology is per day of year only (an older "
                 "dchag): ACC then counts the diurnal cycle as skill; prepare the store "
                 "again for WeatherBench 2's hour-of-day climatology")
        elif exclude is not None and len(exclude):
            self._prepare_exclusion(np.asarray(exclude, np.int64))

    @property
    def description(self) -> str:
        if self.hours is None:
            return "per day of year (older store; no hour of day)"
        years = self.group.attrs.get("train_years")
        span = f"years {years[0]}–{years[1]}" if years else "all the store's times"
        if self.removed:
            return (f"per day of year and hour (WeatherBench 2, "
                    f"{self.group.attrs.get('clim_window_days', '?')}-day window) over the "
                    f"run's training period ({span} less {self.removed} held-out times)")
        return (f"per day of year and hour (WeatherBench 2, "
                f"{self.group.attrs.get('clim_window_days', '?')}-day window) over {span}")

    def time_mean(self) -> np.ndarray:
        """(c, H, W): WeatherBench 1's "Climatology" — one mean field per channel over the
        climatology's years, without the excluded times: no season, no hour of day. From
        the store's raw sums; the day-365 slot is left out, since it repeats 31 December
        of non-leap years (one day in four years, for the mean)."""
        if self._time_mean is None:
            self._time_mean = self._mean_of_sums() if self.hours is not None else \
                _nanmean(np.asarray(self.arr.get_orthogonal_selection(
                    (slice(None), self.index)), np.float64))  # older store: smoothed days
        return self._time_mean

    def _mean_of_sums(self) -> np.ndarray:
        days = slice(0, N_DOY - 1)
        sums, counts = (np.asarray(self.group[name].get_orthogonal_selection(
            (days, slice(None), self.index)), np.float64).sum(axis=(0, 1))
            for name in ("clim_sum", "clim_count"))
        for cs, cn in self._corr.values():
            sums, counts = sums - cs[days].sum(axis=0), counts - cn[days].sum(axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def _prepare_exclusion(self, exclude: np.ndarray) -> None:
        """Sums of the excluded times that the store's climatology did include."""
        times = np.asarray(self.group["time"][:], np.int64)
        stamps = EPOCH + times.astype("timedelta64[h]")
        years = self.group.attrs.get("train_years")
        counted = in_years(stamps, tuple(years) if years else None) & np.isin(times, exclude)
        counted &= np.isin(hour_of_day(stamps), self.hours)
        rows = np.flatnonzero(counted)
        if not rows.size:
            return
        self.removed = int(rows.size)
        doy, hod, leap = day_of_year_index(stamps[rows]), hour_of_day(stamps[rows]), \
            _is_leap(stamps[rows])
        shape = (N_DOY, len(self.index), *self.arr.shape[-2:])
        data = self.group["data"]
        for k, row in enumerate(rows):
            h = self.hours.index(int(hod[k]))
            if h not in self._corr:
                self._corr[h] = (np.zeros(shape), np.zeros(shape))
            s, n = self._corr[h]
            x = np.asarray(data.get_orthogonal_selection(
                (int(row), self.index, slice(None), slice(None))), np.float64)
            valid = np.isfinite(x)
            days = [int(doy[k])] + ([365] if not leap[k] and doy[k] == 364 else [])
            for d in days:
                s[d] += np.where(valid, x, 0.0)
                n[d] += valid

    def _hour_fields(self, h: int, days: list[int]) -> dict[int, np.ndarray]:
        """Smoothed climatology fields (c, H, W) of hour slot h without the excluded times,
        by day of year: those of `days` and any made before. Only the sums within the
        window of the days asked for are read — a month scored reads about 90 days of
        them, not 366 — and weighted with WeatherBench 2's triangle, as `circular_smooth`
        weights them when the store is prepared."""
        done = self._smoothed.setdefault(h, {})
        need = sorted({int(d) for d in days} - done.keys())
        if not need:
            return done
        half = int(self.group.attrs.get("clim_window_days", 61)) // 2
        weights = window_weights(2 * half + 1)
        offsets = np.arange(-half, half + 1)
        span = np.unique((np.asarray(need)[:, None] + offsets[None, :]) % N_DOY)
        sel = (span, h, self.index, slice(None), slice(None))
        cs, cn = self._corr[h]
        s = np.asarray(self.group["clim_sum"].get_orthogonal_selection(sel), np.float64)
        n = np.asarray(self.group["clim_count"].get_orthogonal_selection(sel), np.float64)
        s, n = s - cs[span], n - cn[span]
        row = np.full(N_DOY, -1)
        row[span] = np.arange(span.size)
        for d in need:
            rows = row[(d + offsets) % N_DOY]
            total = np.tensordot(weights, s[rows], axes=1)
            count = np.tensordot(weights, n[rows], axes=1)
            present = count > 1e-6  # no data within the window
            with np.errstate(invalid="ignore", divide="ignore"):
                done[d] = np.where(present, total / np.where(present, count, 1.0), np.nan)
        return done

    def at(self, valid_hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields (n, c, H, W) for valid times given as hours since 1970, and whether each
        one exists (False where the climatology has no such hour or day)."""
        times = EPOCH + np.asarray(valid_hours, np.int64).astype("timedelta64[h]")
        doy = day_of_year_index(times)
        shape = (len(valid_hours), len(self.index), *self.arr.shape[-2:])
        out = np.full(shape, np.nan)
        hods = hour_of_day(times)
        asked: dict[int, list[int]] = {}
        for d, hod in zip(doy, hods, strict=True):
            if self.hours is not None and int(hod) in self.hours:
                asked.setdefault(self.hours.index(int(hod)), []).append(int(d))
        fields = {h: self._hour_fields(h, ds) for h, ds in asked.items() if h in self._corr}
        for k, (d, hod) in enumerate(zip(doy, hods, strict=True)):
            if self.hours is None:
                out[k] = self.arr.get_orthogonal_selection(
                    (int(d), self.index, slice(None), slice(None)))
                continue
            if int(hod) not in self.hours:
                continue
            h = self.hours.index(int(hod))
            if h in fields:
                out[k] = fields[h][int(d)]
            else:
                out[k] = self.arr.get_orthogonal_selection(
                    (int(d), h, self.index, slice(None), slice(None)))
        return out, ~np.isnan(out).any(axis=(1, 2, 3))


def _nanmean(fields: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a grid point with no data anywhere stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(fields, axis=0)
