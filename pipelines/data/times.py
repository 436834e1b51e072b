"""Time as every stage writes and reads it: the one origin (stores count whole hours
since 1970-01-01T00), `--period` spans and `--lead` durations, each written the way
people say them.

`2018` is the whole year, `2018-12` all of December, `2018-12-24` the whole day,
`2018-12-24T18` one hour; `A:B` runs from the start of A to the end of B, so
`2018-01:2018-03` is January to March inclusive and `2018-01-07T18:2018-01-08T12` the
6-hourly inits from 18 UTC to 12 UTC the next day.
"""

from __future__ import annotations

import re

import numpy as np

from pipelines.errors import DchagError

EPOCH = np.datetime64("1970-01-01T00", "h")  # the one time origin: stores count hours since it
_FORMS = [(re.compile(r"^\d{4}$"), "Y"), (re.compile(r"^\d{4}-\d{2}$"), "M"),
          (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "D"),
          (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}$"), "h")]
HELP = "YEAR, YEAR-MM, YEAR-MM-DD or YEAR-MM-DDTHH, or FIRST:LAST of those"


def _bounds(text: str, whole: str, flag: str) -> tuple[np.datetime64, np.datetime64]:
    for pattern, unit in _FORMS:
        if pattern.match(text):
            try:
                start = np.datetime64(text, unit)
            except ValueError as exc:
                raise DchagError(f"{flag} {whole!r}: {text} is not a date",
                                 fix=f"write {HELP}") from exc
            return start.astype("datetime64[h]"), (start + 1).astype("datetime64[h]")
    raise DchagError(f"{flag} {whole!r} is not a period", fix=f"write {HELP}")


def period_hours(text: str, flag: str = "--period") -> tuple[int, int]:
    """[first, end) in hours since 1970; errors name `flag`, the option it came from."""
    first, sep, last = text.strip().partition(":")
    start, end = _bounds(first, text, flag)
    if sep:
        end = _bounds(last, text, flag)[1]
    if end <= start:
        raise DchagError(f"{flag} {text!r} ends before it starts")
    return int((start - EPOCH) // np.timedelta64(1, "h")), int((end - EPOCH) //
                                                                 np.timedelta64(1, "h"))


def in_period(text: str, hours: np.ndarray) -> np.ndarray:
    lo, hi = period_hours(text)
    return (hours >= lo) & (hours < hi)


_LEAD = re.compile(r"^(\d+(?:\.\d+)?)\s*([hdw]?)$")
_HOURS = {"h": 1, "": 1, "d": 24, "w": 168}


def parse_lead(text: str) -> int:
    """`6h`, `3d`, `2w` or plain hours → hours."""
    m = _LEAD.match(text.strip().lower())
    if not m:
        raise DchagError(f"lead {text!r} is not a duration", fix="write e.g. 6h, 3d or 2w")
    hours = float(m.group(1)) * _HOURS[m.group(2)]
    if hours <= 0 or hours != int(hours):
        raise DchagError(f"lead {text!r} must be a positive whole number of hours")
    return int(hours)


def parse_leads(items: list[str]) -> list[int]:
    """Leads from repeated flags and/or comma lists, sorted and without repeats."""
    leads = {parse_lead(part) for item in items for part in item.split(",") if part.strip()}
    return sorted(leads)


def format_lead(hours: int) -> str:
    """`6h`, `1d`, `7d`, `14d`: days as weather people say them (not weeks)."""
    if hours % 24 == 0:
        return f"{hours // 24}d"
    return f"{hours}h"
