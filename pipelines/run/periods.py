"""Train, validation and test periods of a weather run: held out in time, never touching.

The record is cut into three consecutive periods — training, then validation, then test
(`--val-fraction`, `--test-fraction` of the time span, or named spans: `--train-period
1979:2015 --val-period 2016 --test-period 2017:2018`, the WeatherBench protocol) —
separated by gaps of the longest trained lead. A sample (init time, lead) belongs to a
period only if both its input and its target lie inside it, so no time of the validation
or test period is ever a training input or target, and a held-out input is never within
one lead of a training target. Normalisation statistics come from the training period
alone (`stats_*` per time step), and `dchag eval forecast` scores the test period by
default.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pipelines.data.times import EPOCH
from pipelines.errors import DchagError

NAMES = ("train", "val", "test")


def hour_text(hours: int) -> str:
    return str(EPOCH + np.timedelta64(int(hours), "h"))[:13]


@dataclass(frozen=True)
class Periods:
    """Inclusive bounds in hours since 1970 (None: no such period)."""

    train: tuple[int, int]
    val: tuple[int, int] | None
    test: tuple[int, int] | None
    gap_hours: int

    def contains(self, name: str, hours: np.ndarray) -> np.ndarray:
        bounds = getattr(self, name)
        if bounds is None:
            return np.zeros(np.shape(hours), bool)
        return (hours >= bounds[0]) & (hours <= bounds[1])

    def to_dict(self) -> dict:
        out: dict = {"gap_hours": self.gap_hours}
        for name in NAMES:
            bounds = getattr(self, name)
            out[name] = [hour_text(b) for b in bounds] if bounds else None
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Periods:
        def hours(pair):
            if not pair:
                return None
            return tuple(int((np.datetime64(t, "h") - EPOCH) / np.timedelta64(1, "h"))
                         for t in pair)

        return cls(hours(d["train"]), hours(d.get("val")), hours(d.get("test")),
                   int(d.get("gap_hours", 0)))

    def describe(self, name: str) -> str:
        bounds = getattr(self, name)
        return f"{hour_text(bounds[0])} … {hour_text(bounds[1])}" if bounds else "none"


def make_periods(times: np.ndarray, val_fraction: float, test_fraction: float,
                 gap_hours: int) -> Periods:
    """Cut the span of `times` (sorted hours) into train | gap | val | gap | test."""
    t0, t1 = int(times[0]), int(times[-1])
    span = t1 - t0
    too_short = DchagError(
        f"the data spans {span} hours: too short for a training period followed by "
        f"validation and test periods separated by gaps of {gap_hours} h",
        fix="use more data, shorter --lead, or smaller --val-fraction / --test-fraction")
    cursor = t1
    test = val = None
    if test_fraction > 0:
        test = (_snap(times, cursor - round(test_fraction * span)), t1)
        cursor = test[0] - gap_hours - 1
    if val_fraction > 0:
        val_end = _last_at_or_before(times, cursor)
        if val_end is None:
            raise too_short
        val = (_snap(times, val_end - round(val_fraction * span)), val_end)
        cursor = val[0] - gap_hours - 1
    train_end = _last_at_or_before(times, cursor)
    if train_end is None or train_end <= t0:
        raise too_short
    return Periods((t0, train_end), val, test, gap_hours)


def named_periods(times: np.ndarray, train: str, val: str | None, test: str | None,
                  gap_hours: int) -> tuple[Periods, list[str]]:
    """Periods given as `--period`-style spans. Each must hold data and follow the one
    before; an earlier period ends `gap_hours` before the next begins (held-out periods
    keep their bounds, training gives way). Returns the periods and what was trimmed."""
    from pipelines.data.times import period_hours

    spans: dict[str, tuple[int, int] | None] = {}
    for name, text in (("train", train), ("val", val), ("test", test)):
        if text is None:
            spans[name] = None
            continue
        lo, hi = period_hours(text, f"--{name}-period")  # [lo, hi)
        inside = times[(times >= lo) & (times < hi)]
        if inside.size == 0:
            raise DchagError(f"--{name}-period {text}: the data has no time in it (it spans "
                             f"{hour_text(times[0])} … {hour_text(times[-1])})",
                             fix="choose a period the store covers, or prepare those years")
        spans[name] = (int(inside[0]), int(inside[-1]))
    notes: list[str] = []
    order = [n for n in NAMES if spans[n] is not None]
    for before, after in itertools.pairwise(order):
        (b0, b1), (a0, _) = spans[before], spans[after]
        if b1 >= a0:
            raise DchagError(f"--{before}-period must end before --{after}-period begins",
                             fix="give train, then validation, then test years in order")
        if a0 - b1 <= gap_hours:
            end = _last_at_or_before(times, a0 - gap_hours - 1)
            if end is None or end < b0:
                raise DchagError(f"--{before}-period is shorter than the {gap_hours} h gap "
                                 f"kept before --{after}-period", fix="give it more time")
            notes.append(f"{before} period ends at {hour_text(end)}, {gap_hours} h before "
                         f"the {after} period (no {after} input within a lead of a "
                         f"{before} target)")
            spans[before] = (b0, end)
    return Periods(spans["train"], spans["val"], spans["test"], gap_hours), notes


def _snap(times: np.ndarray, hour: int) -> int:
    """The first time at or after `hour`."""
    i = int(np.searchsorted(times, hour, side="left"))
    return int(times[min(i, len(times) - 1)])


def _last_at_or_before(times: np.ndarray, hour: int) -> int | None:
    i = int(np.searchsorted(times, hour, side="right")) - 1
    return int(times[i]) if i >= 0 else None
