"""The reconstruction scores as `dchag eval masks` reports them: one row per score, one
value per predictor (the model, then each inpainting baseline), lower or higher better
as the label says."""

from __future__ import annotations

import numpy as np

from pipelines.eval.mask_scores import MaskScores


def summary_rows(scores: MaskScores) -> list[tuple[str, str, list[float]]]:
    """(label, number format, one value per predictor, NaN where a row has none)."""
    def mean(values: np.ndarray) -> list[float]:
        return [float(np.nanmean(values[i])) for i in range(len(scores.predictors))]

    rmse = [scores.rmse_of(p) for p in scores.predictors]
    rows = [("RMSE (reflectance, masked pixels)", ".4g", rmse),
            ("MSE", ".4g", [v ** 2 for v in rmse]),
            ("PSNR (dB, masked pixels, mean over bands)", ".2f", mean(scores.psnr_all)),
            ("SSIM (masked pixels, mean over bands)", ".3f", mean(scores.ssim_all)),
            ("SAM (degrees, masked plant pixels)", ".2f", mean(scores.sam_all))]
    if scores.ndvi_all is not None:
        rows += [("|ΔNDVI| (670/800 nm, masked plant pixels)", ".4f", mean(scores.ndvi_all)),
                 ("|Δ red-edge position| (nm, masked plant pixels)", ".2f",
                  mean(scores.rep_all)),
                 ("relative error per band, mean over bands", ".4f",
                  mean(scores.band_rel_all))]
    others = [float("nan")] * (len(scores.predictors) - 1)
    rows += [(f"RMSE {name}", ".4g", [float(value), *others])
             for name, value in scores.region_rmse.items()]
    absent = scores.absent_rmse_by_predictor()
    if absent:
        rows.append((f"RMSE, {len(scores.drop_channels)} bands absent from the input "
                     "(every pixel; baselines interpolate in wavelength)", ".4g",
                     [float(absent[p]) for p in scores.predictors]))
    return rows
