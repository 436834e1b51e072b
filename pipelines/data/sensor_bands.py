"""Bands known by what they measure: a band is its centre wavelength and its width (FWHM),
not its position in a file. This is how a model trained on one instrument's bands reads a
cube from another.

A band of width f centred at μ records the reflectance spectrum averaged under its
spectral response, a Gaussian of that FWHM. A model's own bands sample the spectrum
finely, so the other instrument's band j is, to a good approximation, a weighted mean of
the model's bands c: y_j = Σ_c S_jc x_c, with S the Gaussian response evaluated at the
model's centres (`response`). Going the other way — the model's C bands from the
instrument's M — is underdetermined when M < C, so `lift` fits the model's spectral prior
(its training cubes' principal spectra) to the instrument's bands through S and adds back
what the fit misses, interpolated in wavelength: fine sensors keep their detail, coarse
ones borrow the shape of real spectra. Both maps are affine and fixed, so a cube's trip
through the model costs two matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.errors import DchagError

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
RIDGE = 1e-6  # relative: keeps the prior's fit determined when bands are few or alike


def band_widths(centres: np.ndarray, fwhm: np.ndarray | None = None) -> np.ndarray:
    """Each band's FWHM: as recorded, or (stores older than recorded widths, and runs
    named by centre alone) the spacing of the band grid, the width prep's resampling uses."""
    centres = np.asarray(centres, np.float64)
    if fwhm is not None:
        return np.asarray(fwhm, np.float64)
    if centres.size < 2:
        return np.ones_like(centres)
    return np.abs(np.gradient(np.sort(centres)))[np.argsort(np.argsort(centres))]


def store_bands(group: object) -> tuple[np.ndarray, np.ndarray]:
    """(centres, FWHM) of an appl.zarr's bands, in nm."""
    nm = np.asarray(group["wavelength"][:], np.float64)  # type: ignore[index]
    fwhm = np.asarray(group["fwhm"][:], np.float64) if "fwhm" in group else None  # type: ignore[index, operator]
    if fwhm is not None and not (np.isfinite(fwhm).all() and (fwhm > 0).all()):
        fwhm = None  # not widths: the grid's spacing, as for stores without them
    return nm, band_widths(nm, fwhm)


def recorded_bands(info: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(centres, FWHM) of a run's bands: as its model.json records them, or (runs made
    before it did) read from the band names (`700.0nm`) with the grid's spacing as width."""
    measures = info.get("channel_measures") or {}
    if measures.get("wavelength_nm"):
        return (np.asarray(measures["wavelength_nm"], np.float64),
                np.asarray(measures["fwhm_nm"], np.float64))
    nm = np.array([float(n.removesuffix("nm")) for n in names])
    return nm, band_widths(nm)


def covered(model_nm: np.ndarray, model_fwhm: np.ndarray, data_nm: np.ndarray) -> np.ndarray:
    """(M,) bool: the data bands whose centre lies within the model's spectral range
    (its outermost bands' half widths included). A band outside it measures light the
    model never saw: no response over the model's bands can stand for it."""
    lo = model_nm.min() - model_fwhm[np.argmin(model_nm)] / 2
    hi = model_nm.max() + model_fwhm[np.argmax(model_nm)] / 2
    return (data_nm >= lo - 1e-9) & (data_nm <= hi + 1e-9)


def response(model_nm: np.ndarray, model_fwhm: np.ndarray, data_nm: np.ndarray,
             data_fwhm: np.ndarray) -> np.ndarray:
    """S (M × C), rows summing to 1: each data band as a weighted mean of the model's bands.
    The weight is the data band's Gaussian response broadened by the model band's own
    width (their responses convolve), times the model band's width (the share of the
    spectrum it samples), so a narrow data band between two model bands still weighs both."""
    sigma = np.sqrt((data_fwhm[:, None] / FWHM_PER_SIGMA) ** 2
                    + (model_fwhm[None, :] / FWHM_PER_SIGMA) ** 2)
    w = np.exp(-0.5 * ((model_nm[None, :] - data_nm[:, None]) / sigma) ** 2) / sigma
    w = w * model_fwhm[None, :]
    return w / w.sum(axis=1, keepdims=True)


def interpolation(data_nm: np.ndarray, model_nm: np.ndarray) -> np.ndarray:
    """(C × M) linear interpolation in wavelength, held constant beyond the data's range."""
    order = np.argsort(data_nm)
    eye = np.eye(data_nm.size)[order]
    cols = np.stack([np.interp(model_nm, data_nm[order], eye[:, j])
                     for j in range(data_nm.size)], axis=1)
    return cols


@dataclass(frozen=True)
class SensorMap:
    """How a model on C bands sees a cube of another band set (the M bands it covers)."""

    data_index: np.ndarray  # (M,) positions in the store of the bands the model covers
    uncovered: np.ndarray  # positions in the store of the bands it does not
    project: np.ndarray  # (M, C): model-band reflectance → the data's bands
    lift: np.ndarray  # (C, M): data-band reflectance → the model's bands (with `offset`)
    offset: np.ndarray  # (C,)
    method: str  # "spectral prior" or "interpolation"
    outside: int  # model bands beyond the data's range (estimated, never measured)

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """(…, M) → (…, C)."""
        return y @ self.lift.T + self.offset

    def to_data(self, x: np.ndarray) -> np.ndarray:
        """(…, C) → (…, M)."""
        return x @ self.project.T


def sensor_map(model_nm: np.ndarray, model_fwhm: np.ndarray, data_nm: np.ndarray,
               data_fwhm: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None
               ) -> SensorMap:
    """The maps between a model's bands and a store's. `prior` = (mean (C,), components
    (k, C)) in reflectance, the model's spectral prior; without one the lift is linear
    interpolation in wavelength."""
    model_nm, model_fwhm = np.asarray(model_nm, np.float64), np.asarray(model_fwhm, np.float64)
    data_nm, data_fwhm = np.asarray(data_nm, np.float64), np.asarray(data_fwhm, np.float64)
    inside = covered(model_nm, model_fwhm, data_nm)
    idx = np.flatnonzero(inside)
    if not idx.size:
        raise DchagError(f"no band of the data ({data_nm.min():g}–{data_nm.max():g} nm) lies "
                         f"within the model's {model_nm.min():g}–{model_nm.max():g} nm",
                         fix="use cubes that overlap the bands the model was trained on")
    s = response(model_nm, model_fwhm, data_nm[idx], data_fwhm[idx])
    interp = interpolation(data_nm[idx], model_nm)

    def lift_one(y: np.ndarray) -> np.ndarray:
        if prior is None:
            return interp @ y
        mean, comps = prior
        basis = comps[: min(len(comps), idx.size)].T  # (C, k)
        sb = s @ basis
        gram = sb.T @ sb
        gram = gram + RIDGE * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12) \
            * np.eye(len(gram))
        fit = mean + basis @ np.linalg.solve(gram, sb.T @ (y - s @ mean))
        return fit + interp @ (y - s @ fit)

    offset = lift_one(np.zeros(idx.size))
    lift = np.stack([lift_one(e) - offset for e in np.eye(idx.size)], axis=1)
    lo, hi = data_nm[idx].min(), data_nm[idx].max()
    outside = int(((model_nm < lo - data_fwhm[idx].max()) |
                   (model_nm > hi + data_fwhm[idx].max())).sum())
    return SensorMap(idx, np.flatnonzero(~inside), s, lift, offset,
                     "spectral prior" if prior is not None else "interpolation", outside)
