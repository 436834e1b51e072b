"""`dchag eval masks`: a reconstruction scored on its hidden pixels, beside every
inpainting baseline recomputed from the visible pixels of the same cube and mask.

Per predictor (the model, then `BASELINES`): RMSE/MSE, PSNR and SSIM per band, spectral
angle (SAM) on hidden plant pixels, relative error per band (a curve over wavelength),
and the absolute error of NDVI and of the red-edge position (`pipelines.metrics.spectra`)
on hidden plant pixels. With several mask draws per cube the model's lead over each
baseline is reported as a paired mean with a cube-clustered interval (`eval.paired`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.data.zarr_store import open_artifact
from pipelines.eval.absent_bands import AbsentScorer, AbsentScores, absent_verdict, library
from pipelines.eval.inpaint import BASELINES, inpaint, spectral_fill
from pipelines.eval.masks import matching_bands, matching_samples
from pipelines.eval.paired import Paired, paired_difference
from pipelines.metrics.images import band_psnr_ssim, masked_mse, spectral_angle
from pipelines.metrics.spectra import band_relative_error, index_errors
from pipelines.progress import NoProgress, Progress

PREDICTORS = ("model", *BASELINES)
REGIONS = {"visible 400–700 nm": (400, 700), "red edge 700–750 nm": (700, 750),
           "near infrared 750–900 nm": (750, 900)}
PAIRED_STATS = ("mean", "low", "high", "wins")  # model − baseline; wins: share model lower


@dataclass
class MaskScores:
    """Scores of the model's reconstruction (the first predictor) and of each inpainting
    baseline on the same hidden pixels: arrays lead with a `predictor` axis."""

    wavelength: np.ndarray
    predictors: tuple[str, ...]
    psnr_all: np.ndarray  # (predictor, band), mean over samples
    ssim_all: np.ndarray  # (predictor, band)
    mse_all: np.ndarray  # (predictor, sample)
    sam_all: np.ndarray  # (predictor, sample) degrees, masked plant pixels
    region_rmse: dict[str, float]  # the model's
    absent_mse_all: np.ndarray | None = None  # (predictor, sample): absent bands, all pixels
    drop_channels: tuple[str, ...] = ()
    band_rel_all: np.ndarray | None = None  # (predictor, band), mean over samples
    ndvi_all: np.ndarray | None = None  # (predictor, sample) |ΔNDVI|, masked plant pixels
    rep_all: np.ndarray | None = None  # (predictor, sample) |Δ red-edge position| nm
    cube: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (sample,) source
    draw: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # (sample,)
    absent_bands: AbsentScores | None = None  # absent bands on visible pixels, 3 methods

    def absent_rmse_by_predictor(self) -> dict[str, float]:
        """RMSE over every pixel of the bands absent from the input (empty without)."""
        if self.absent_mse_all is None:
            return {}
        return {p: float(np.sqrt(np.nanmean(v)))
                for p, v in zip(self.predictors, self.absent_mse_all, strict=True)}

    @property
    def psnr(self) -> np.ndarray:
        return self.psnr_all[0]

    @property
    def ssim(self) -> np.ndarray:
        return self.ssim_all[0]

    @property
    def sample_mse(self) -> np.ndarray:
        return self.mse_all[0]

    @property
    def sample_sam(self) -> np.ndarray:
        return self.sam_all[0]

    @property
    def mse(self) -> float:
        return float(np.nanmean(self.sample_mse))

    @property
    def rmse(self) -> float:
        return float(np.sqrt(self.mse))

    def rmse_of(self, predictor: str) -> float:
        return float(np.sqrt(np.nanmean(self.mse_all[self.predictors.index(predictor)])))

    def sam_of(self, predictor: str) -> float:
        return float(np.nanmean(self.sam_all[self.predictors.index(predictor)]))

    def best_baseline(self, score: str = "rmse") -> str:
        of = self.rmse_of if score == "rmse" else self.sam_of
        return min(self.predictors[1:], key=of)

    def rmse_by_predictor(self) -> dict[str, float]:
        return {p: self.rmse_of(p) for p in self.predictors}

    def sam_by_predictor(self) -> dict[str, float]:
        return {p: self.sam_of(p) for p in self.predictors}

    def paired(self, score: str, baseline: str) -> Paired:
        """Model − `baseline` per (cube, draw) of `score` ("rmse": each sample's RMSE, or
        "sam"), with the cube-clustered interval."""
        rows = np.sqrt(self.mse_all) if score == "rmse" else self.sam_all
        clusters = self.cube if len(self.cube) else np.arange(rows.shape[1])
        return paired_difference(rows[0], rows[self.predictors.index(baseline)], clusters)

    @property
    def cubes(self) -> int:
        return len(set(self.cube.tolist())) if len(self.cube) else self.mse_all.shape[1]

    @property
    def draws(self) -> int:
        return len(set(self.draw.tolist())) if len(self.draw) else 1


def inpainting_verdict(rmse: dict[str, float], what: str = "masked RMSE",
                       paired: Paired | None = None) -> str:
    """One sentence: the model (`rmse["model"]`) against the best inpainting baseline,
    with the paired difference where there is one."""
    best = min((p for p in rmse if p != "model"), key=rmse.__getitem__)
    verdict = "beats" if rmse["model"] < rmse[best] else "does not beat"
    digits = 2 if "SAM" in what else 4
    text = (f"the MAE {verdict} the best inpainting baseline ({best.replace('_', ' ')}): "
            f"{what} {rmse['model']:.{digits}f} vs {rmse[best]:.{digits}f}, ratio "
            f"{rmse['model'] / rmse[best]:.3f}")
    if paired is not None and paired.samples > 1:
        text += (f"; model − baseline {paired.mean:+.{digits}f} [95 % {paired.low:+.{digits}f}"
                 f", {paired.high:+.{digits}f}] over {paired.samples} (cube, mask) pairs from "
                 f"{paired.clusters} cubes, lower in {paired.wins:.0%} of them")
    return text


def verdict_lines(s: MaskScores) -> list[str]:
    """The two verdicts a plant scientist asks for first: masked RMSE and mean SAM."""
    return [inpainting_verdict(s.rmse_by_predictor(), "masked RMSE",
                               s.paired("rmse", s.best_baseline("rmse"))),
            inpainting_verdict(s.sam_by_predictor(), "mean SAM (degrees)",
                               s.paired("sam", s.best_baseline("sam")))]


def absent_lines(s: MaskScores) -> list[str]:
    """With bands absent from the input: the model against the baselines' spatial fill
    followed by spectral interpolation (every pixel), then against the two absent-band
    baselines on the visible pixels, for every absent band and for the interior ones."""
    absent = s.absent_rmse_by_predictor()
    if not absent:
        return []
    lines = ["absent bands: " + inpainting_verdict(absent, "RMSE over every pixel")]
    if s.absent_bands is not None:
        lines.append(absent_verdict(s.absent_bands, interior=False))
        if s.absent_bands.interior_mse_all is not None:
            lines.append(absent_verdict(s.absent_bands, interior=True))
    return lines


def eval_masks(recon: Path, data: Path, progress: Progress | None = None) -> MaskScores:
    progress = progress or NoProgress()
    rg = open_artifact(recon, "reconstruction")
    group = open_artifact(data, "appl")
    wl = rg["wavelength"][:]
    bands = matching_bands(group["wavelength"][:], wl, data)
    r0, c0, h, w = rg.attrs["crop"]
    picks = matching_samples(rg, group, recon, data)
    absent = rg["dropped"][:].astype(bool) if "dropped" in rg else np.zeros(len(wl), bool)
    scorer = AbsentScorer(wl, absent, library(group, bands, set(picks), rg.attrs["crop"])) \
        if absent.any() else None
    n = len(PREDICTORS)
    rows: dict[str, list[list]] = {k: [[] for _ in range(n)] for k in (
        "psnr", "ssim", "mse", "sam", "absent", "rel", "ndvi", "rep")}
    sq: dict[str, list[float]] = {name: [] for name in REGIONS}
    progress.start(len(picks), "scoring")
    for i, k in enumerate(picks):
        orig = group["cube"].get_orthogonal_selection(
            (int(k), bands, slice(r0, r0 + h), slice(c0, c0 + w))).astype(np.float64)
        hidden = rg["masked"][i].astype(bool)
        plant = group["mask"][int(k), r0:r0 + h, c0:c0 + w].astype(bool)
        recs = [rg["reconstruction"][i].astype(np.float64),
                *(inpaint(name, orig, hidden) for name in BASELINES)]
        if absent.any():  # the baselines must not see the bands the model did not see
            recs[1:] = [spectral_fill(r, wl, absent) for r in recs[1:]]
            for p, rec in enumerate(recs):
                rows["absent"][p].append(float(((rec[absent] - orig[absent]) ** 2).mean()))
            scorer.add(orig, recs[0], ~hidden)
        for p, rec in enumerate(recs):
            a, b = band_psnr_ssim(orig, rec, hidden)
            rows["psnr"][p].append(a)
            rows["ssim"][p].append(b)
            rows["mse"][p].append(masked_mse(orig, rec, hidden))
            rows["sam"][p].append(spectral_angle(orig, rec, hidden & plant))
            rows["rel"][p].append(band_relative_error(orig, rec, hidden))
            idx = index_errors(orig, rec, wl, hidden & plant)
            rows["ndvi"][p].append(idx["ndvi"])
            rows["rep"][p].append(idx["red_edge_nm"])
        for name, (lo, hi) in REGIONS.items():
            sel = (wl >= lo) & (wl <= hi)
            if sel.any():
                sq[name].append(masked_mse(orig[sel], recs[0][sel], hidden))
        progress.advance()
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no pixel anywhere: stays NaN
        finite_psnr = [np.nanmean(np.where(np.isinf(v), np.nan, v), axis=0)
                       for v in rows["psnr"]]
        region = {n: float(np.sqrt(np.nanmean(v))) for n, v in sq.items() if v}
        rel = np.array([np.nanmean(v, axis=0) for v in rows["rel"]])
    return MaskScores(
        wl, PREDICTORS, np.array(finite_psnr),
        np.array([np.mean(v, axis=0) for v in rows["ssim"]]), np.array(rows["mse"]),
        np.array(rows["sam"]), region,
        np.array(rows["absent"]) if absent.any() else None,
        tuple(rg.attrs.get("drop_channels", [])), rel, np.array(rows["ndvi"]),
        np.array(rows["rep"]), np.array([str(v) for v in rg["source"][:]])
        if "source" in rg else np.array([str(k) for k in picks]),
        rg["draw"][:].astype(int) if "draw" in rg else np.zeros(len(picks), int),
        None if scorer is None else scorer.scores())
