"""Latitude-weighted weather scores.

Two conventions, named in every output that uses them:

`weatherbench2` (default), as WeatherBench 2 defines them:
- weights w_i = cos(lat_i) / mean_i cos(lat_i) (mean over grid rows, so weights average 1);
- MSE   = mean over init times t of  mean over (lat, lon) of  w · (f − o)²;
- RMSE  = sqrt(MSE)  (square root *after* the time mean);
- wACC  = mean over t of  Σ w f′ o′ / sqrt(Σ w f′² · Σ w o′²),  with anomalies
  f′ = f − c, o′ = o − c against the day-of-year climatology c of the valid time.

`climax`, as ClimaX reports (to compare with its published tables):
- RMSE  = mean over t of sqrt(mean over (lat, lon) of w · (f − o)²)  (root *before* the mean);
- wACC  = the same ratio with anomalies against the mean of o over the evaluated period,
  each centred on its own weighted spatial mean, per init time and then averaged.

Arrays are (time, lat, lon) for one channel; `lat` in degrees.
"""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("weatherbench2", "climax")


def latitude_weights(lat: np.ndarray) -> np.ndarray:
    w = np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64)))
    return w / w.mean()


def spatial_mse(f: np.ndarray, o: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """(T,) weighted mean squared error of each init time."""
    w = latitude_weights(lat)[:, None]
    return (w * (np.asarray(f, np.float64) - o) ** 2).mean(axis=(-2, -1))


def mse(f: np.ndarray, o: np.ndarray, lat: np.ndarray) -> float:
    return float(spatial_mse(f, o, lat).mean())


def rmse(f: np.ndarray, o: np.ndarray, lat: np.ndarray, convention: str = "weatherbench2"
         ) -> float:
    per_time = spatial_mse(f, o, lat)
    if convention == "climax":
        return float(np.sqrt(per_time).mean())
    return float(np.sqrt(per_time.mean()))


def _acc(fa: np.ndarray, oa: np.ndarray, w: np.ndarray) -> np.ndarray:
    num = (w * fa * oa).sum(axis=(-2, -1))
    den = np.sqrt((w * fa**2).sum(axis=(-2, -1)) * (w * oa**2).sum(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def wacc(f: np.ndarray, o: np.ndarray, clim: np.ndarray, lat: np.ndarray,
         convention: str = "weatherbench2") -> float:
    """Latitude-weighted anomaly correlation; NaN when an anomaly is identically zero
    (a climatology forecast has no anomaly to correlate)."""
    w = latitude_weights(lat)[:, None]
    f, o = np.asarray(f, np.float64), np.asarray(o, np.float64)
    if convention == "climax":
        ref = o.mean(axis=0, keepdims=True)
        fa, oa = f - ref, o - ref
        fa = fa - (w * fa).mean(axis=(-2, -1), keepdims=True)
        oa = oa - (w * oa).mean(axis=(-2, -1), keepdims=True)
    else:
        fa, oa = f - clim, o - clim
    per_time = _acc(fa, oa, w)
    return float(np.nanmean(per_time)) if np.isfinite(per_time).any() else float("nan")
