"""Checking and converting the `units` of ERA5 variables.

Each variable has one unit in `era5.zarr` (ERA5's own, e.g. geopotential in m² s⁻²).
A file's `units` attribute is read and compared after normalising the spelling
(`m**2 s**-2`, `m2 s-2`, `m^2/s^2` are the same). Units that convert unambiguously are
converted (°C → K, hPa → Pa, g/kg → kg/kg, mm → m of precipitation, geopotential
height in metres → geopotential by the standard gravity 9.80665 m s⁻², the WMO
definition of the geopotential metre); anything else is refused, so a field in the wrong
unit can never be silently treated as the right one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.errors import DchagError

G0 = 9.80665


@dataclass(frozen=True)
class Conversion:
    """value_in_store = scale · value_in_file + offset"""

    scale: float = 1.0
    offset: float = 0.0
    found: str = ""

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0


def normalise(units: str) -> str:
    """Spelling-independent form: lower case, no spaces, `**` and `^` dropped,
    `a/b` written as `a b-1` where b carries no exponent."""
    u = units.strip().lower().replace("**", "").replace("^", "")
    u = re.sub(r"/([a-z]+)(\d*)", lambda m: f" {m.group(1)}-{m.group(2) or 1}", u)
    return re.sub(r"\s+", "", u)


def _forms(*spellings: str) -> frozenset[str]:
    return frozenset(normalise(s) for s in spellings)


# variable → (accepted spellings, {spelling: conversion to the store's unit})
_SPEC: dict[str, tuple[frozenset[str], dict[str, Conversion]]] = {}


def _register(variables: tuple[str, ...], same: frozenset[str],
              convert: dict[str, Conversion] | None = None) -> None:
    table = {normalise(k): v for k, v in (convert or {}).items()}
    for v in variables:
        _SPEC[v] = (same, table)


GEOPOTENTIAL = ("m**2 s**-2", "m2 s-2", "m^2/s^2", "m2/s2", "m**2/s**2")
_register(("z",), _forms(*GEOPOTENTIAL),
          {"m": Conversion(G0), "gpm": Conversion(G0), "dam": Conversion(10 * G0)})
_register(("t", "t2m"), _forms("K", "kelvin", "degK"),
          {c: Conversion(1.0, 273.15) for c in ("degC", "°C", "C", "celsius",
                                                "degrees_celsius", "deg_c")})
_register(("u", "v", "u10", "v10"), _forms("m s**-1", "m s-1", "m/s", "ms-1", "m.s-1"))
_register(("q",), _forms("kg kg**-1", "kg kg-1", "kg/kg", "1"),
          {"g kg**-1": Conversion(1e-3), "g/kg": Conversion(1e-3)})
_register(("r",), _forms("%", "percent"))
_register(("w",), _forms("Pa s**-1", "Pa s-1", "Pa/s"))
_register(("msl", "sp"), _forms("Pa", "pascal"),
          {"hPa": Conversion(100.0), "mbar": Conversion(100.0), "millibars": Conversion(100.0),
           "mb": Conversion(100.0)})
_register(("tp",), _forms("m", "m of water equivalent"),
          {"mm": Conversion(1e-3), "kg m**-2": Conversion(1e-3)})
_register(("tcwv",), _forms("kg m**-2", "kg m-2", "kg/m2", "kg/m^2", "mm"))
_register(("tisr",), _forms("J m**-2", "J m-2", "J/m2", "J/m^2"))
_register(("lsm",), _forms("(0 - 1)", "1", "0-1", "fraction", "dimensionless", ""))
# Orography in metres; surface geopotential (ERA5's `z` without a level, WeatherBench 2's
# `geopotential_at_surface`) is divided by the standard gravity.
_register(("orography",), _forms("m", "metre", "metres", "meter", "meters"),
          {s: Conversion(1.0 / G0) for s in GEOPOTENTIAL})


def conversion(variable: str, units: str | None, expected: str, where: object) -> Conversion:
    """How to bring a variable from the file's `units` to `expected` (ERA5's unit)."""
    if units is None:
        return Conversion(found="")
    same, table = _SPEC.get(variable, (_forms(expected), {}))
    key = normalise(str(units))
    if key in same:
        return Conversion(found=str(units))
    if key in table:
        c = table[key]
        return Conversion(c.scale, c.offset, found=str(units))
    hint = " (geopotential height? z must be geopotential, m² s⁻²)" if variable == "z" else ""
    raise DchagError(f"variable {variable!r} has units {units!r}, expected {expected!r}{hint}",
                     path=where, fix="convert the file to ERA5's units, or check that the "
                     "variable is what its name says")

