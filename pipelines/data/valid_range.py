"""Physically possible values per variable (in the store's units): a wider net than any
climate record, so only broken inputs fall through it.

A single 3e38 (a float's fill value leaking through) passes every finiteness check, then
makes the channel's standard deviation 6.6e35 and the normalised data useless. The bounds
below are several times beyond observed extremes: geopotential from below sea level to
the top of ERA5's 1 hPa level, temperatures from 150 K to 350 K, winds to 250 m/s.
"""

from __future__ import annotations

import numpy as np

from pipelines.errors import DchagError

RANGES: dict[str, tuple[float, float]] = {
    "z": (-1.0e4, 6.0e5),  # m² s⁻²
    "t": (150.0, 350.0),  # K
    "u": (-250.0, 250.0),  # m s⁻¹
    "v": (-250.0, 250.0),
    "q": (-1.0e-3, 0.1),  # kg kg⁻¹
    "r": (-5.0, 200.0),  # %: supersaturation over ice exceeds 100
    "w": (-100.0, 100.0),  # Pa s⁻¹
    "t2m": (150.0, 350.0),
    "u10": (-150.0, 150.0),
    "v10": (-150.0, 150.0),
    "msl": (8.0e4, 1.2e5),  # Pa
    "sp": (3.0e4, 1.2e5),
    "tp": (-1.0e-3, 1.0),  # m per hour
    "tcwv": (-1.0, 150.0),  # kg m⁻²
    "tcw": (-1.0, 200.0),
    "tisr": (-1.0, 1.0e7),  # J m⁻² per hour
    "lsm": (-0.01, 1.01),
    "orography": (-500.0, 9000.0),  # m
    "lat": (-90.0, 90.0),
}


def check_range(fields: np.ndarray, variable: str, name: str, where: str, path: object
                ) -> None:
    """Refuse finite values of `variable` outside its range (NaN is checked elsewhere)."""
    lo, hi = RANGES.get(variable, (-np.inf, np.inf))
    with np.errstate(invalid="ignore"):
        out = (fields < lo) | (fields > hi)
    if out.any():
        worst = fields[out][np.argmax(np.abs(fields[out]))]
        raise DchagError(f"{name} at {where} has {int(out.sum())} value(s) outside the "
                         f"physical range [{lo:g}, {hi:g}] (e.g. {worst:.4g})", path=path,
                         fix="fix the input (a fill value that leaked through?), or pass "
                         "--allow-out-of-range to keep them")
