"""ERA5 variables, channel names and the channel presets.

A channel is a variable on a level: `z_500` (geopotential at 500 hPa) or `t2m` (a single-level
variable). Files may name a variable by its ERA5 short name (`z`, `t2m`) or by its long
WeatherBench name (`geopotential`, `2m_temperature`) or by ECMWF's short name (`2t`, `10u`,
`10v`); all resolve to the netCDF short name.

Constant fields (`lsm`, `orography`, `lat`) are channels too, as ClimaX and Aurora feed
them: read once from any input that holds them (ERA5's invariant file, WeatherBench 2's
`land_sea_mask` / `geopotential_at_surface`) or, for `lat`, computed from the grid, and
broadcast over time. They are model inputs, never forecast targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import DchagError


@dataclass(frozen=True)
class Variable:
    short: str
    long: str
    units: str
    pressure_level: bool
    standard_name: str | None = None  # CF standard name, where one exists
    constant: bool = False  # the same field at every time: an input, not a target
    computed: bool = False  # made from the grid, never read from a file

    @property
    def title(self) -> str:
        """A readable long name: `u component of wind`."""
        return self.long.replace("_", " ")


VARIABLES: dict[str, Variable] = {v.short: v for v in [
    Variable("z", "geopotential", "m**2 s**-2", True, "geopotential"),
    Variable("t", "temperature", "K", True, "air_temperature"),
    Variable("u", "u_component_of_wind", "m s**-1", True, "eastward_wind"),
    Variable("v", "v_component_of_wind", "m s**-1", True, "northward_wind"),
    Variable("q", "specific_humidity", "kg kg**-1", True, "specific_humidity"),
    Variable("r", "relative_humidity", "%", True, "relative_humidity"),
    Variable("w", "vertical_velocity", "Pa s**-1", True,
             "lagrangian_tendency_of_air_pressure"),
    Variable("t2m", "2m_temperature", "K", False, "air_temperature"),
    Variable("u10", "10m_u_component_of_wind", "m s**-1", False, "eastward_wind"),
    Variable("v10", "10m_v_component_of_wind", "m s**-1", False, "northward_wind"),
    Variable("msl", "mean_sea_level_pressure", "Pa", False, "air_pressure_at_mean_sea_level"),
    Variable("sp", "surface_pressure", "Pa", False, "surface_air_pressure"),
    Variable("tp", "total_precipitation", "m", False, "lwe_thickness_of_precipitation_amount"),
    Variable("tcwv", "total_column_water_vapour", "kg m**-2", False,
             "atmosphere_mass_content_of_water_vapor"),
    Variable("tcw", "total_column_water", "kg m**-2", False, None),
    Variable("tisr", "toa_incident_solar_radiation", "J m**-2", False,
             "integral_wrt_time_of_toa_incoming_shortwave_flux"),
    Variable("lsm", "land_sea_mask", "1", False, "land_area_fraction", constant=True),
    Variable("orography", "orography", "m", False, "surface_altitude", constant=True),
    Variable("lat", "latitude", "degrees_north", False, "latitude", constant=True,
             computed=True),
]}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pretty_units(units: str) -> str:
    """`m**2 s**-2` → `m² s⁻²` for figures and tables (files keep the CF spelling)."""
    parts = []
    for part in units.split():
        base, _, power = part.partition("**")
        parts.append(base + power.translate(_SUPERSCRIPT))
    return " ".join(parts)


_BY_LONG = {v.long: v.short for v in VARIABLES.values()}
# ECMWF's own short names (GRIB `shortName`, MARS requests) where ERA5's netCDF differs.
ECMWF_ALIASES = {"2t": "t2m", "10u": "u10", "10v": "v10"}
# Other names of the constant fields: surface geopotential (converted to metres), CMIP's.
CONSTANT_ALIASES = {"z_surface": "orography", "geopotential_at_surface": "orography",
                    "orog": "orography"}

WB13_LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
LEVELS_17 = (10, 20, 30, 50, 70, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)


def short_name(name: str) -> str | None:
    """The ERA5 short name for a file variable name, or None if it is not an ERA5 variable."""
    if name in VARIABLES:
        return name
    return _BY_LONG.get(name) or ECMWF_ALIASES.get(name) or CONSTANT_ALIASES.get(name)


def is_constant(channel: str) -> bool:
    """A constant field (`lsm`, `orography`, `lat`): broadcast over time, never a target."""
    return VARIABLES[parse_channel(channel).variable].constant


@dataclass(frozen=True)
class Channel:
    variable: str
    level: int | None  # hPa; None for single-level variables

    @property
    def name(self) -> str:
        return self.variable if self.level is None else f"{self.variable}_{self.level}"

    @property
    def units(self) -> str:
        return VARIABLES[self.variable].units


def parse_channel(text: str) -> Channel:
    """`z_500` → Channel('z', 500); `t2m` → Channel('t2m', None); long names accepted too."""
    text = text.strip()
    var, _, level = text.rpartition("_")
    if var and level.isdigit():
        short = short_name(var)
        if short is None or not VARIABLES[short].pressure_level:
            raise DchagError(f"unknown pressure-level variable {var!r} in channel {text!r}",
                             fix=f"use one of {', '.join(_pressure_vars())}")
        return Channel(short, int(level))
    short = short_name(text)
    if short is None:
        raise DchagError(f"unknown channel {text!r}",
                         fix="write VAR_LEVEL for pressure levels (z_500) or a single-level "
                         f"name ({', '.join(_single_vars())}); see `dchag channels`")
    if VARIABLES[short].pressure_level:
        raise DchagError(f"channel {text!r} needs a pressure level", fix=f"write e.g. {short}_500")
    return Channel(short, None)


def _pressure_vars() -> list[str]:
    return [v.short for v in VARIABLES.values() if v.pressure_level]


def _single_vars() -> list[str]:
    return [v.short for v in VARIABLES.values() if not v.pressure_level]


def _levels(variable: str, levels: tuple[int, ...]) -> list[str]:
    return [f"{variable}_{p}" for p in levels]


# The paper uses 80 channels; the authors' public code uses 84 (t2m, u10, v10; z on 13 levels;
# q, t, u, v on 17 levels from 10 hPa). `era5-80` is that set without the 10 hPa level of
# q, t, u and v, so its 80 channels are a subset of `era5-84` and both can be compared.
PRESETS: dict[str, tuple[str, list[str]]] = {
    "era5-80": (
        "the paper's 80 channels: t2m, u10, v10; z on 13 levels; "
        "q, t, u, v on 16 levels 20-1000 hPa",
        ["t2m", "u10", "v10", *_levels("z", WB13_LEVELS),
         *[c for v in ("q", "t", "u", "v") for c in _levels(v, LEVELS_17[1:])]],
    ),
    "era5-84": (
        "the authors' code: t2m, u10, v10; z on 13 levels; q, t, u, v on 17 levels 10-1000 hPa",
        ["t2m", "u10", "v10", *_levels("z", WB13_LEVELS),
         *[c for v in ("q", "t", "u", "v") for c in _levels(v, LEVELS_17)]],
    ),
    "climax-48": (
        "ClimaX's 5.625° set: lsm, orography, lat; t2m, u10, v10; z, u, v, t, r, q at 50, "
        "250, 500, 600, 700, 850, 925 hPa",
        ["lsm", "orography", "lat", "t2m", "u10", "v10",
         *[c for v in ("z", "u", "v", "t", "r", "q") for c in
           _levels(v, (50, 250, 500, 600, 700, 850, 925))]],
    ),
    "wb-5": (
        "WeatherBench headline variables: z_500, t_850, t2m, u10, v10",
        ["z_500", "t_850", "t2m", "u10", "v10"],
    ),
    "sample-14": (
        "the shipped sample: z, t, u, v, q at 500 and 850 hPa; t2m, u10, v10, msl",
        [*[f"{v}_{p}" for v in ("z", "t", "u", "v", "q") for p in (500, 850)],
         "t2m", "u10", "v10", "msl"],
    ),
}
DEFAULT_PRESET = "era5-80"


def resolve_channels(preset: str | None, channels: str | None) -> list[Channel]:
    """Channels from an explicit comma list, else from a preset (default: the paper's 80)."""
    if channels:
        names = [c for c in channels.split(",") if c.strip()]
    else:
        preset = preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise DchagError(f"unknown channel preset {preset!r}",
                             fix=f"choose one of {', '.join(PRESETS)}")
        names = PRESETS[preset][1]
    parsed = [parse_channel(n) for n in names]
    if not parsed:
        raise DchagError("no channels given", fix="write e.g. --channels z_500,t_850,t2m")
    seen: set[str] = set()
    for ch in parsed:
        if ch.name in seen:
            raise DchagError(f"channel {ch.name} is listed twice")
        seen.add(ch.name)
    return parsed
