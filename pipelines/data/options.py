"""Choices and small parsers of the data stages, free of heavy imports: the command line
reads them to build `--help` without loading netCDF, zarr or scipy."""

from __future__ import annotations

from pipelines.errors import DchagError

REGRID_METHODS: tuple[str, ...] = ("bilinear", "conservative")
REGRID_BACKENDS: tuple[str, ...] = ("native", "xesmf")


def parse_years(text: str | None) -> tuple[int, int] | None:
    """`1979:2015` → (1979, 2015); `2018` → (2018, 2018)."""
    if not text:
        return None
    a, _, b = text.partition(":")
    try:
        years = (int(a), int(b or a))
    except ValueError as exc:
        raise DchagError(f"--train-years {text!r} is not YEAR or FIRST:LAST") from exc
    if years[0] > years[1]:
        raise DchagError(f"--train-years {text!r}: first year after last")
    return years
