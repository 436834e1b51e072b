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

# Sources: "WMO" is the WMO Archive of Weather and Climate Extremes (wmo.asu.edu);
# "ERA5 docs" is ECMWF's ERA5 data documentation (its 37 pressure levels reach 1 hPa,
# about 48 km). Each bound sits well beyond the extreme it cites.
RANGES: dict[str, tuple[float, float]] = {
    # m² s⁻²: below sea level at 1000 hPa in deep lows, ≈ 9.81 × 48 km = 4.7e5 at 1 hPa
    "z": (-1.0e4, 6.0e5),
    # K: 184 K (Vostok 1983, WMO) and stratospheric minima near 180 K to 330 K (Death
    # Valley 1913, WMO)
    "t": (150.0, 350.0),
    # m s⁻¹: jet streams reach about 110, the polar-night jet near 1 hPa about 150
    "u": (-250.0, 250.0),
    "v": (-250.0, 250.0),
    # kg kg⁻¹: a 35 °C dew point (Dhahran 2003, the highest reported) is about 0.036
    "q": (-1.0e-3, 0.1),
    "r": (-5.0, 200.0),  # %: supersaturation over ice exceeds 100
    "w": (-100.0, 100.0),  # Pa s⁻¹: convective updrafts of 50 m s⁻¹ are about −30
    "t2m": (150.0, 350.0),  # K: as t (the same WMO records are 2 m temperatures)
    # m s⁻¹: the highest measured gust is 113 (Barrow Island 1996, WMO)
    "u10": (-150.0, 150.0),
    "v10": (-150.0, 150.0),
    # Pa: 870 hPa (Typhoon Tip 1979) to 1083.8 hPa (Agata 1968), both WMO
    "msl": (8.0e4, 1.2e5),
    "sp": (3.0e4, 1.2e5),  # Pa: about 330 hPa on Everest's summit, to msl's maximum
    # m per hour: the record is 305 mm in 42 minutes (Holt, Missouri 1947, WMO)
    "tp": (-1.0e-3, 1.0),
    "tcwv": (-1.0, 150.0),  # kg m⁻²: observed maxima near 80
    "tcw": (-1.0, 200.0),
    # J m⁻² per hour: 1361 W m⁻² (+3.4 % at perihelion) × 3600 s ≈ 5.1e6
    "tisr": (-1.0, 1.0e7),
    "lsm": (-0.01, 1.01),  # a fraction
    "orography": (-500.0, 9000.0),  # m: the Dead Sea shore (−430) to Everest (8849)
    "lat": (-90.0, 90.0),
}


def check_range(fields: np.ndarray, variable: str, name: str, times: np.ndarray,
                path: object) -> None:
    """Refuse finite values of `variable` outside its range (NaN is checked elsewhere):
    `fields` (time, ...) at `times`; the message names the first such time and the value
    farthest out there."""
    lo, hi = RANGES.get(variable, (-np.inf, np.inf))
    with np.errstate(invalid="ignore"):
        out = (fields < lo) | (fields > hi)
    if not out.any():
        return
    first = int(np.argmax(out.reshape(out.shape[0], -1).any(axis=1)))
    values = fields[first][out[first]]
    worst = values[np.argmax(np.abs(values))]
    when = ("its constant field" if np.isnat(times[first])
            else f"{str(times[first])[:16]}")
    raise DchagError(f"{name} at {when} has {int(out.sum())} value(s) outside the physical "
                     f"range [{lo:g}, {hi:g}] (e.g. {worst:.4g})", path=path,
                     fix="fix the input (a fill value that leaked through?), or pass "
                     "--allow-out-of-range to keep them")
