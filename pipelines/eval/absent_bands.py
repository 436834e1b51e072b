"""Bands absent from the input (`predict masks --drop-channels`): the model's imputation
against the two absent-band baselines, on the pixels where nothing else is missing.

A band absent from the input is absent at every pixel, so no spatial method can fill it;
what can is the spectrum itself:

- `spectral_interpolation`: linear in wavelength between the nearest present bands
  (`inpaint.spectral_fill`);
- `low_rank`: the principal spectra of a library — every pixel of the cubes *not* being
  scored (with `predict masks --samples val`, the run's training cubes, the ones the
  model learned from) — fitted by least squares to each pixel's present bands and
  evaluated at the absent ones. The literature's standard for spectral gaps: the filled
  spectrum is a mixture of spectra the instrument has really recorded.

Scored on the visible pixels (the masked ones add a spatial error every method shares)
and split by where the gap lies: *interior* bands have a present band on both sides
(interpolation's home ground), the others lie beyond the first or last present band
(where interpolation can only hold the end value flat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from pipelines.data.pixel_spectra import sample_spectra
from pipelines.eval.inpaint import principal_spectra, spectral_fill

ABSENT_METHODS = ("model", "spectral_interpolation", "low_rank")
LIBRARY_PIXELS = 20000  # spectra drawn from the library cubes: plenty for ≤ 16 components


def interior_bands(wavelength: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """Absent bands with a present band at a shorter and at a longer wavelength."""
    have = wavelength[~absent]
    if not len(have):
        return np.zeros_like(absent)
    return absent & (wavelength > have.min()) & (wavelength < have.max())


def library(group: zarr.Group, bands: list[int], scored: set[int], crop: tuple[int, ...],
            seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, components) of up to `LIBRARY_PIXELS` spectra from the cubes of `group`
    not in `scored`, inside the model's crop; None when every cube is being scored."""
    others = [k for k in range(group["cube"].shape[0]) if k not in scored]
    if not others:
        return None
    return principal_spectra(sample_spectra(group["cube"], others, bands, LIBRARY_PIXELS,
                                            tuple(crop), seed))  # type: ignore[arg-type]


def low_rank_bands(cube: np.ndarray, absent: np.ndarray,
                   basis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """`cube` (band, y, x) with its `absent` bands rebuilt, at every pixel, from the
    library components fitted to the present bands."""
    mean, comps = basis
    have = ~absent
    flat = cube.reshape(len(cube), -1)
    coef, *_ = np.linalg.lstsq(comps[:, have].T, flat[have] - mean[have, None], rcond=None)
    out = flat.copy()
    out[absent] = comps[:, absent].T @ coef + mean[absent, None]
    return out.reshape(cube.shape)


@dataclass
class AbsentScores:
    """Per method (`ABSENT_METHODS`, low_rank only with a library) and sample: the MSE
    over the visible pixels of every absent band, and of the interior ones alone."""

    methods: tuple[str, ...]
    mse_all: np.ndarray  # (method, sample)
    interior_mse_all: np.ndarray | None  # (method, sample); None: no interior band absent
    interior_bands: int

    def rmse_by_method(self, interior: bool = False) -> dict[str, float]:
        rows = self.interior_mse_all if interior else self.mse_all
        if rows is None:
            return {}
        return {m: float(np.sqrt(np.nanmean(v))) for m, v in zip(self.methods, rows,
                                                                 strict=True)}


class AbsentScorer:
    """Collects the absent-band errors of one cube after another (`add`), then `scores`."""

    def __init__(self, wavelength: np.ndarray, absent: np.ndarray,
                 basis: tuple[np.ndarray, np.ndarray] | None):
        self.wl, self.absent, self.basis = wavelength, absent, basis
        self.interior = interior_bands(wavelength, absent)
        self.methods = ABSENT_METHODS if basis is not None else ABSENT_METHODS[:2]
        self.rows: list[list[float]] = [[] for _ in self.methods]
        self.inner: list[list[float]] = [[] for _ in self.methods]

    def add(self, orig: np.ndarray, model: np.ndarray, visible: np.ndarray) -> None:
        fills = [model, spectral_fill(orig, self.wl, self.absent)]
        if self.basis is not None:
            fills.append(low_rank_bands(orig, self.absent, self.basis))
        for m, rec in enumerate(fills):
            err = (rec - orig)[:, visible] ** 2
            self.rows[m].append(float(err[self.absent].mean()) if visible.any() else np.nan)
            if self.interior.any():
                self.inner[m].append(float(err[self.interior].mean()) if visible.any()
                                     else np.nan)

    def scores(self) -> AbsentScores:
        return AbsentScores(self.methods, np.array(self.rows),
                            np.array(self.inner) if self.interior.any() else None,
                            int(self.interior.sum()))


def absent_verdict(s: AbsentScores, interior: bool) -> str:
    """One sentence: the model's absent-band RMSE against each baseline, the verdict
    against the better one."""
    rmse = s.rmse_by_method(interior)
    best = min(s.methods[1:], key=rmse.__getitem__)
    where = f"the {s.interior_bands} interior ones" if interior else "every one"
    ratio = rmse["model"] / rmse[best]
    verdict = "beats" if ratio < 0.995 else "trails" if ratio > 1.005 else "matches"
    against = "; ".join(f"{m.replace('_', ' ')} {rmse[m]:.4f} (ratio {rmse['model'] / rmse[m]:.3f})"
                        for m in s.methods[1:])
    return (f"absent bands ({where}, visible pixels): the MAE {verdict} "
            f"{best.replace('_', ' ')}: RMSE {rmse['model']:.4f} against {against}")
