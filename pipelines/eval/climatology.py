"""The climatology that ACC and the climatology forecast are measured against.

`era5.zarr` holds one per (day of year, hour of day) — WeatherBench 2's definition.
Stores written by older dchag versions hold one per day of year only; they are still
read, with a note that their ACC counts the diurnal cycle as skill.
"""

from __future__ import annotations

import numpy as np
import zarr

from pipelines.data.era5_stats import day_of_year_index, hour_of_day
from pipelines.notes import note

EPOCH = np.datetime64("1970-01-01T00", "h")


class StoreClimatology:
    """Climatology fields of the store's own `climatology` array."""

    def __init__(self, group: zarr.Group, channel_index: list[int], where: object):
        self.arr = group["climatology"]
        self.index = channel_index
        dims = self.arr.attrs.get("_ARRAY_DIMENSIONS", [])
        self.hours = [int(h) for h in group["hour"][:]] if "hour" in dims else None
        if self.hours is None:
            note(f"{where}: this store's climatology is per day of year only (an older "
                 "dchag): ACC then counts the diurnal cycle as skill; prepare the store "
                 "again for WeatherBench 2's hour-of-day climatology")

    @property
    def description(self) -> str:
        return ("per day of year and hour (WeatherBench 2)" if self.hours is not None
                else "per day of year (older store; no hour of day)")

    def at(self, valid_hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields (n, c, H, W) for valid times given as hours since 1970, and whether each
        one exists (False where the climatology has no such hour or day)."""
        times = EPOCH + valid_hours.astype("timedelta64[h]")
        doy = day_of_year_index(times)
        shape = (len(valid_hours), len(self.index), *self.arr.shape[-2:])
        out = np.full(shape, np.nan)
        for k, (d, h) in enumerate(zip(doy, hour_of_day(times), strict=True)):
            if self.hours is None:
                key: tuple = (int(d),)
            elif int(h) in self.hours:
                key = (int(d), self.hours.index(int(h)))
            else:
                continue
            out[k] = self.arr.get_orthogonal_selection((*key, self.index, slice(None),
                                                        slice(None)))
        return out, ~np.isnan(out).any(axis=(1, 2, 3))
