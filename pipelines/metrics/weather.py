"""Latitude-weighted weather scores, in two named conventions and four regions.

`weatherbench2` (default), as WeatherBench 2 defines them:
- weights w_i = cos(lat_i), normalised over the region's grid rows;
- MSE   = mean over init times t of the w-weighted spatial mean of (f − o)²;
- RMSE  = sqrt(MSE)  (square root *after* the time mean);
- ACC   = mean over t of  Σ w f′o′ / sqrt(Σ w f′² · Σ w o′²),  anomalies f′ = f − c,
  o′ = o − c against the climatology c of the valid time (day of year and hour).

`climax`, exactly as ClimaX reports its test scores (`lat_weighted_rmse`,
`lat_weighted_acc`, averaged over test batches weighted by batch size, as PyTorch
Lightning logs them):
- RMSE  = mean over inits of sqrt(w-weighted spatial mean of (f − o)²);
- ACC   = per batch of `batch` consecutive inits: anomalies against the evaluated
  period's mean field, then each centred on its *unweighted* mean over the whole batch
  and grid, and Σ w p′y′ / sqrt(Σ w p′² · Σ w y′²) pooled over the batch; then the mean
  over batches weighted by their size.

Regions (WeatherBench 2's): global, tropics (20°S–20°N), northern extra-tropics
(20°N–90°N), southern extra-tropics (90°S–20°S). Arrays are (time, lat, lon) of one
channel; `lat` in degrees.
"""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("weatherbench2", "climax")
REGIONS: dict[str, tuple[float, float]] = {
    "global": (-90.0, 90.0), "tropics": (-20.0, 20.0), "nh-extratropics": (20.0, 90.0),
    "sh-extratropics": (-90.0, -20.0)}
CLIMAX_BATCH = 128  # ClimaX's test batch size (configs/global_forecast_climax.yaml)


def latitude_weights(lat: np.ndarray, region: str = "global") -> np.ndarray:
    """cos(lat) inside the region, zero outside, normalised to mean 1 over its rows."""
    lat = np.asarray(lat, dtype=np.float64)
    lo, hi = REGIONS[region]
    inside = (lat >= lo) & (lat <= hi)
    w = np.where(inside, np.cos(np.deg2rad(lat)), 0.0)
    return w / w[inside].mean()


def _region_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """w-weighted mean over (lat, lon) of (…, lat, lon)."""
    return (w[:, None] * x).sum(axis=(-2, -1)) / (w.sum() * x.shape[-1])


def spatial_mse(f: np.ndarray, o: np.ndarray, lat: np.ndarray, region: str = "global"
                ) -> np.ndarray:
    """(T,) weighted mean squared error of each init time."""
    return _region_mean((np.asarray(f, np.float64) - o) ** 2, latitude_weights(lat, region))


def mse(f: np.ndarray, o: np.ndarray, lat: np.ndarray, region: str = "global") -> float:
    return float(spatial_mse(f, o, lat, region).mean())


def rmse(f: np.ndarray, o: np.ndarray, lat: np.ndarray, convention: str = "weatherbench2",
         region: str = "global") -> float:
    per_time = spatial_mse(f, o, lat, region)
    if convention == "climax":
        return float(np.sqrt(per_time).mean())
    return float(np.sqrt(per_time.mean()))


def _acc(fa: np.ndarray, oa: np.ndarray, w: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    wb = w[:, None]
    num = (wb * fa * oa).sum(axis=axes)
    den = np.sqrt((wb * fa**2).sum(axis=axes) * (wb * oa**2).sum(axis=axes))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def wacc(f: np.ndarray, o: np.ndarray, clim: np.ndarray | None, lat: np.ndarray,
         convention: str = "weatherbench2", region: str = "global",
         period_mean: np.ndarray | None = None, batch: int = CLIMAX_BATCH) -> float:
    """Latitude-weighted anomaly correlation; NaN when an anomaly is identically zero
    (a climatology forecast has no anomaly to correlate).

    `clim` (T, lat, lon): the climatology of each valid time (weatherbench2);
    `period_mean` (lat, lon): the evaluated period's mean (climax)."""
    w = latitude_weights(lat, region)
    cells = w > 0
    f, o = np.asarray(f, np.float64)[:, cells], np.asarray(o, np.float64)[:, cells]
    w = w[cells]
    if convention == "climax":
        ref = np.asarray(period_mean, np.float64)[cells]
        scores, sizes = [], []
        for s in range(0, len(f), batch):
            p, y = f[s:s + batch] - ref, o[s:s + batch] - ref
            p, y = p - p.mean(), y - y.mean()
            scores.append(float(_acc(p, y, w, (0, 1, 2))))
            sizes.append(len(p))
        good = np.isfinite(scores)
        if not good.any():
            return float("nan")
        return float(np.average(np.array(scores)[good], weights=np.array(sizes)[good]))
    c = np.asarray(clim, np.float64)[:, cells]
    per_time = _acc(f - c, o - c, w, (-2, -1))
    return float(np.nanmean(per_time)) if np.isfinite(per_time).any() else float("nan")
