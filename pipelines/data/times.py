"""`--period`: a span of init times, written the way people say them.

`2018` is the whole year, `2018-12` all of December, `2018-12-24` the whole day,
`2018-12-24T18` one hour; `A:B` runs from the start of A to the end of B, so
`2018-01:2018-03` is January to March inclusive and `2018-01-07T18:2018-01-08T12` the
6-hourly inits from 18 UTC to 12 UTC the next day.
"""

from __future__ import annotations

import re

import numpy as np

from pipelines.errors import DchagError

EPOCH = np.datetime64("1970-01-01T00", "h")
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
