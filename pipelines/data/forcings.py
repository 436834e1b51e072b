"""Forcings: inputs known in advance from the clock and the grid alone, never forecast.

A forecaster that sees only the state at t cannot tell the local time of day or the season
of t + lead, yet both drive the change it must predict (2 m temperature's 6-h tendency is
mostly the diurnal cycle). GraphCast and anemoi therefore feed such fields as inputs; so do
we, computed — not read — for every sample and every rollout step:

    local solar time  τ = (UTC hour + lon / 15) mod 24          → cos, sin of 2π τ / 24
    day of year       d (0 … 365.25)                            → cos, sin of 2π d / 365.25
    declination       δ = −23.44° · cos(2π (d + 10) / 365.25)
    cos zenith        μ = sin φ sin δ + cos φ cos δ cos(2π (τ − 12) / 24)
    insolation        I = (1 + 0.033 cos(2π d / 365.25)) · max(μ, 0)    (top of atmosphere,
                                                                       in solar constants)

The first five are taken at the valid time t + lead; local time and insolation also at the
input time t, so the pair tells the phase of the diurnal cycle the lead crosses (a 6-h and a
24-h lead look alike to a smooth lead embedding, but not to these). All are O(1) already,
so they are used as they are (no normalisation statistics).
The equation of time (≤ 16 min) is left out: it shifts τ by under 0.07 rad.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pipelines.data.times import EPOCH

FORCINGS = ("cos_local_time", "sin_local_time", "cos_day_of_year", "sin_day_of_year",
            "toa_insolation", "cos_local_time_at_input", "sin_local_time_at_input",
            "toa_insolation_at_input")
YEAR_DAYS = 365.25


def day_of_year(hours: np.ndarray) -> np.ndarray:
    """Fractional day of year (0 at 1 January 00 UTC) of hours since 1970-01-01."""
    t = EPOCH + np.asarray(hours, dtype=np.int64).astype("timedelta64[h]")
    start = t.astype("datetime64[Y]").astype("datetime64[h]")
    return (t - start).astype(np.int64) / 24.0


def _clock(hours: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local solar time (B, W) in hours and day of year (B,)."""
    utc = np.mod(np.asarray(hours, dtype=np.int64), 24).astype(np.float64)
    local = np.mod(utc[:, None] + np.asarray(lon, np.float64)[None, :] / 15.0, 24.0)
    return local, day_of_year(hours)


def insolation(hours: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Top-of-atmosphere insolation in solar constants: (B, H, W)."""
    return _insolation(*_clock(hours, lon), lat)


def _insolation(local: np.ndarray, doy: np.ndarray, lat: np.ndarray) -> np.ndarray:
    decl = np.deg2rad(-23.44) * np.cos(2 * np.pi * (doy + 10.0) / YEAR_DAYS)  # (B,)
    phi = np.deg2rad(np.asarray(lat, np.float64))[None, :, None]
    hour_angle = 2 * np.pi * (local - 12.0) / 24.0  # (B, W)
    mu = (np.sin(phi) * np.sin(decl)[:, None, None]
          + np.cos(phi) * np.cos(decl)[:, None, None] * np.cos(hour_angle)[:, None, :])
    distance = 1.0 + 0.033 * np.cos(2 * np.pi * doy / YEAR_DAYS)
    return distance[:, None, None] * np.maximum(mu, 0.0)


def forcing_fields(input_hours: np.ndarray, lead_hours: np.ndarray, lat: np.ndarray,
                   lon: np.ndarray) -> np.ndarray:
    """The `FORCINGS` for inputs at `input_hours` (B,) forecast `lead_hours` (B,) ahead:
    (B, F, H, W) float32, on the grid of `lat` (H,) and `lon` (W,)."""
    t0 = np.asarray(input_hours, dtype=np.int64)
    valid = t0 + np.asarray(lead_hours, dtype=np.int64)
    b, h, w = t0.size, len(lat), len(lon)
    local, doy = _clock(valid, lon)
    angle_day = 2 * np.pi * local / 24.0  # (B, W)
    angle_year = 2 * np.pi * doy / YEAR_DAYS  # (B,)
    out = np.empty((b, len(FORCINGS), h, w), np.float32)
    out[:, 0] = np.cos(angle_day)[:, None, :]
    out[:, 1] = np.sin(angle_day)[:, None, :]
    out[:, 2] = np.cos(angle_year)[:, None, None]
    out[:, 3] = np.sin(angle_year)[:, None, None]
    out[:, 4] = _insolation(local, doy, lat)
    local0, doy0 = _clock(t0, lon)
    out[:, 5] = np.cos(2 * np.pi * local0 / 24.0)[:, None, :]
    out[:, 6] = np.sin(2 * np.pi * local0 / 24.0)[:, None, :]
    out[:, 7] = _insolation(local0, doy0, lat)
    return out


def with_forcings(state: Tensor, input_hours: Tensor, lead_hours: Tensor, lat: np.ndarray,
                  lon: np.ndarray) -> Tensor:
    """(B, C, H, W) normalised state → (B, C + F, H, W): the forcings appended last, so the
    state's channel positions (and a forecaster's `out_index`) are unchanged."""
    fields = forcing_fields(input_hours.detach().cpu().numpy(),
                            lead_hours.detach().cpu().numpy(), lat, lon)
    return torch.cat([state, torch.from_numpy(fields).to(state.device, state.dtype)], dim=1)
