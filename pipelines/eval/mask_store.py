"""`mask_scores.zarr`: what `dchag eval masks` writes, and the reader of its RMSEs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.data.zarr_store import atomic_store, dims_array, open_artifact
from pipelines.eval.mask_scores import PAIRED_STATS, MaskScores
from pipelines.metrics.images import SSIM_CONVENTION


def write_mask_scores(s: MaskScores, out: Path, attrs: dict) -> None:
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "mask_scores", "convention": SSIM_CONVENTION,
                        "rmse": s.rmse, "mse": s.mse,
                        "psnr_mean": float(np.nanmean(s.psnr)),
                        "ssim_mean": float(np.nanmean(s.ssim)),
                        "sam_deg_mean": float(np.nanmean(s.sample_sam)),
                        "region_rmse": s.region_rmse,
                        "baseline_rmse": {p: s.rmse_of(p) for p in s.predictors[1:]},
                        "best_baseline": s.best_baseline(),
                        "baseline_sam_deg": {p: s.sam_of(p) for p in s.predictors[1:]},
                        "best_baseline_sam": s.best_baseline("sam"),
                        "cubes": s.cubes, "draws": s.draws,
                        "drop_channels": list(s.drop_channels), **attrs})
        if s.absent_mse_all is not None:
            dims_array(g, "absent_rmse_by_predictor", ["predictor"],
                       data=np.array(list(s.absent_rmse_by_predictor().values())),
                       fill_value=None)
        if s.absent_bands is not None:  # on visible pixels, against the absent-band baselines
            a = s.absent_bands
            dims_array(g, "absent_method", ["absent_method"], data=np.array(a.methods),
                       fill_value=None)
            dims_array(g, "absent_band_mse_by_method", ["absent_method", "sample"],
                       data=a.mse_all, fill_value=None)
            dims_array(g, "absent_band_rmse_by_method", ["absent_method"],
                       data=np.array(list(a.rmse_by_method().values())), fill_value=None)
            if a.interior_mse_all is not None:
                dims_array(g, "interior_absent_rmse_by_method", ["absent_method"],
                           data=np.array(list(a.rmse_by_method(True).values())),
                           fill_value=None)
            g.attrs["interior_absent_bands"] = a.interior_bands
        dims_array(g, "wavelength", ["band"], data=s.wavelength, fill_value=None)
        dims_array(g, "psnr", ["band"], data=s.psnr, fill_value=None)
        dims_array(g, "ssim", ["band"], data=s.ssim, fill_value=None)
        dims_array(g, "mse", ["sample"], data=s.sample_mse, fill_value=None)
        dims_array(g, "sam_deg", ["sample"], data=s.sample_sam, fill_value=None)
        # the same scores for every predictor: the model, then the inpainting baselines
        dims_array(g, "predictor", ["predictor"], data=np.array(s.predictors),
                   fill_value=None)
        dims_array(g, "rmse_by_predictor", ["predictor"],
                   data=np.array(list(s.rmse_by_predictor().values())), fill_value=None)
        dims_array(g, "mse_by_predictor", ["predictor", "sample"], data=s.mse_all,
                   fill_value=None)
        dims_array(g, "psnr_by_predictor", ["predictor", "band"], data=s.psnr_all,
                   fill_value=None)
        dims_array(g, "ssim_by_predictor", ["predictor", "band"], data=s.ssim_all,
                   fill_value=None)
        dims_array(g, "sam_deg_by_predictor", ["predictor", "sample"], data=s.sam_all,
                   fill_value=None)
        # what a spectroscopist reads off a spectrum (pipelines.metrics.spectra)
        dims_array(g, "band_rel_error_by_predictor", ["predictor", "band"],
                   data=s.band_rel_all, fill_value=None)
        dims_array(g, "ndvi_abs_error_by_predictor", ["predictor", "sample"],
                   data=s.ndvi_all, fill_value=None)
        dims_array(g, "red_edge_abs_error_nm_by_predictor", ["predictor", "sample"],
                   data=s.rep_all, fill_value=None)
        # which cube and mask draw each sample is, and model − each baseline, paired
        dims_array(g, "sample_source", ["sample"], data=s.cube.astype(object),
                   fill_value=None)
        dims_array(g, "draw", ["sample"], data=s.draw, fill_value=None)
        dims_array(g, "paired_stat", ["paired_stat"], data=np.array(PAIRED_STATS),
                   fill_value=None)
        for score, name in (("rmse", "paired_rmse"), ("sam", "paired_sam_deg")):
            dims_array(g, name, ["baseline", "paired_stat"], data=np.array(
                [s.paired(score, b).as_list() for b in s.predictors[1:]]), fill_value=None)
        dims_array(g, "baseline", ["baseline"], data=np.array(s.predictors[1:]),
                   fill_value=None)


def read_mask_scores(path: Path) -> dict[str, float]:
    """RMSE per predictor from `mask_scores.zarr` (the model alone in older stores)."""
    g = open_artifact(path, "mask_scores")
    if "predictor" not in g:
        return {"model": float(g.attrs["rmse"])}
    return {str(p): float(v) for p, v in zip(g["predictor"][:], g["rmse_by_predictor"][:],
                                              strict=True)}


def read_mask_verdicts(path: Path) -> list[str]:
    """The verdicts `eval masks` printed (masked RMSE and mean SAM against the best
    baseline of each, with the paired interval), rebuilt from `mask_scores.zarr`; the RMSE
    verdict alone from stores written before SAM was compared."""
    from pipelines.eval.mask_scores import inpainting_verdict
    from pipelines.eval.paired import Paired

    g = open_artifact(path, "mask_scores")
    rmse = read_mask_scores(path)
    if "paired_rmse" not in g:
        return [inpainting_verdict(rmse)] if len(rmse) > 1 else []
    baselines = [str(b) for b in g["baseline"][:]]
    predictors = [str(p) for p in g["predictor"][:]]

    def paired(name: str, rows: str, best: str) -> Paired:
        mean, low, high, wins = (float(v) for v in g[name][baselines.index(best)])
        values = g[rows][:]
        diff = values[0] - values[predictors.index(best)]  # NaN where nothing was scored
        ok = np.isfinite(diff)
        return Paired(mean, low, high, wins, int(ok.sum()),
                      len(set(g["sample_source"][:][ok].tolist())))

    sam = {"model": float(g.attrs["sam_deg_mean"]), **g.attrs["baseline_sam_deg"]}
    return [inpainting_verdict(rmse, "masked RMSE", paired(
                "paired_rmse", "mse_by_predictor", g.attrs["best_baseline"])),
            inpainting_verdict(sam, "mean SAM (degrees)", paired(
                "paired_sam_deg", "sam_deg_by_predictor", g.attrs["best_baseline_sam"]))]
