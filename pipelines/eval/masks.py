"""`dchag predict masks` and `dchag eval masks`: MAE reconstructions of hyperspectral cubes.

A fixed, seeded share of each cube's patches is hidden; the model reconstructs every band
of the hidden patches from the visible ones. The reconstruction keeps the visible patches
as they were, so every score measures what the model had to predict. With
`--drop-channels`, some bands are not input at all (a sensor without them): the model
reconstructs every pixel of those, the baselines interpolate them in wavelength from
their own reconstruction of the present bands, and they are scored apart as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import Tensor

from pipelines.data.bands import band_names, select_bands
from pipelines.data.zarr_store import atomic_store, dims_array, open_artifact
from pipelines.errors import DchagError
from pipelines.eval.inpaint import BASELINES, inpaint, spectral_fill
from pipelines.metrics.images import (
    SSIM_CONVENTION,
    band_psnr_ssim,
    masked_mse,
    spectral_angle,
)
from pipelines.model.mae import random_masking
from pipelines.model.tokenizer import unpatchify
from pipelines.progress import NoProgress, Progress
from pipelines.run.load import TrainedRun
from pipelines.train.data import describe_artifact, split_positions

REGIONS = {"visible 400–700 nm": (400, 700), "red edge 700–750 nm": (700, 750),
           "near infrared 750–900 nm": (750, 900)}


def _bands(run: TrainedRun, group: zarr.Group, data: Path) -> list[int]:
    names = band_names(group["wavelength"][:])
    missing = [b for b in run.channels if b not in names]
    if missing:
        raise DchagError(f"{len(missing)} of the run's bands are not in the data "
                         f"(e.g. {missing[0]})", path=data,
                         fix="prepare the cubes with the run's --range and --bands")
    return [names.index(b) for b in run.channels]


def _crop(run: TrainedRun, shape: tuple[int, int], data: Path) -> tuple[int, int]:
    """Top-left corner of the centred crop the model sees."""
    h, w = run.mcfg.img_size
    if h > shape[0] or w > shape[1]:
        raise DchagError(f"the cubes are {shape[0]}x{shape[1]}, smaller than the run's "
                         f"{h}x{w}", path=data)
    return (shape[0] - h) // 2, (shape[1] - w) // 2


def absent_bands(run: TrainedRun, spec: list[str]) -> list[int]:
    """`--drop-channels`: positions among the run's bands, by name (`700.0nm`) or by
    wavelength range (`750-900`); at least one band must stay."""
    wavelengths = np.array([float(b.removesuffix("nm")) for b in run.channels])
    picked = select_bands(list(run.channels), wavelengths, spec, run.path, "--drop-channels")
    if len(picked) >= len(run.channels):
        raise DchagError(f"--drop-channels {','.join(spec)} would leave the model no input "
                         "band", path=run.path, fix="keep at least one band")
    return picked


def _reconstruct(run: TrainedRun, x: Tensor, noise: Tensor, mask_ratio: float,
                 present: Tensor | None) -> tuple[Tensor, Tensor]:
    """Normalised cubes (B, c, H, W) → predictions for every band of the run
    (B, L, C, p·p) and the patch mask (B, L). With `present`, only those bands are input
    (`x` holds just them); the decoder still predicts every band."""
    ids_keep, mask, ids_restore = random_masking(x.shape[0], run.mcfg.num_patches,
                                                 mask_ratio, x.device, noise=noise)
    latent = run.model.encoder(x, present, patch_ids=ids_keep)
    return run.model.decode(latent, ids_restore, None), mask


def predict_masks(run: TrainedRun, data: Path, out: Path, mask_ratio: float, samples: str,
                  seed: int, batch: int, device: torch.device, attrs: dict,
                  progress: Progress | None = None, drop: list[int] | None = None) -> int:
    """Write `reconstruction.zarr`; returns the number of cubes reconstructed. Bands in
    `drop` (positions among the run's) are not input at all: every pixel of them is the
    model's, and `dropped` marks them for `eval masks`."""
    progress = progress or NoProgress()
    if not 0.0 < mask_ratio < 1.0:
        raise DchagError(f"--mask-ratio {mask_ratio} must be between 0 and 1")
    group = open_artifact(data, "appl")
    bands = _bands(run, group, data)
    dropped = np.zeros(len(bands), bool)
    dropped[drop or []] = True
    present = (torch.tensor(np.flatnonzero(~dropped), device=device) if dropped.any()
               else None)
    cube = group["cube"]
    r0, c0 = _crop(run, cube.shape[2:], data)
    h, w = run.mcfg.img_size
    if samples == "all":
        picks = list(range(cube.shape[0]))
    elif samples == "val":
        picks = split_positions(describe_artifact(data, run.cfg), run.cfg, "val")
        if not picks:
            raise DchagError("the data has no validation plants for this run", path=data,
                             fix="pass --samples all")
    else:
        raise DchagError(f"--samples {samples!r}: choose val or all")
    mean = torch.tensor(run.info["mean"], dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(run.info["std"], dtype=torch.float32, device=device)[:, None, None]
    gen = torch.Generator().manual_seed(seed)
    p = run.mcfg.patch
    progress.start(len(picks), "reconstructing")
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "reconstruction", "mask_ratio": mask_ratio,
                        "seed": seed, "crop": [r0, c0, h, w], "data": str(Path(data).resolve()),
                        **attrs})
        rec = dims_array(g, "reconstruction", ["sample", "band", "y", "x"],
                         shape=(len(picks), len(bands), h, w), chunks=(1, len(bands), h, w),
                         dtype="float32", fill_value=None)
        hidden = dims_array(g, "masked", ["sample", "y", "x"], shape=(len(picks), h, w),
                            chunks=(1, h, w), dtype="uint8", fill_value=None)
        dims_array(g, "sample_index", ["sample"], data=np.array(picks), fill_value=None)
        # Which cube each one is, by its recorded source: eval matches on this, not on
        # the position, so scoring against another appl.zarr cannot pair wrong cubes.
        sources = group["source"][:]
        dims_array(g, "source", ["sample"], data=np.array([str(sources[k]) for k in picks],
                                                          dtype=object), fill_value=None)
        dims_array(g, "wavelength", ["band"], data=group["wavelength"][:][bands],
                   fill_value=None)
        dims_array(g, "dropped", ["band"], data=dropped.astype(np.uint8), fill_value=None)
        g.attrs["drop_channels"] = [run.channels[i] for i in np.flatnonzero(dropped)]
        absent = torch.from_numpy(dropped).to(device)[None, :, None, None]
        for s in range(0, len(picks), batch):
            chunk = picks[s:s + batch]
            x = np.stack([cube.get_orthogonal_selection(
                (k, bands, slice(r0, r0 + h), slice(c0, c0 + w))) for k in chunk])
            x = torch.from_numpy(x.astype(np.float32)).to(device)
            noise = torch.rand(len(chunk), run.mcfg.num_patches, generator=gen).to(device)
            xn = (x - mean) / std
            with torch.no_grad():
                pred, mask = _reconstruct(run, xn if present is None else xn[:, present],
                                          noise, mask_ratio, present)
            pred = unpatchify(pred.float(), p, run.mcfg.grid) * std + mean
            pix = unpatchify(mask[:, :, None, None].expand(-1, -1, 1, p * p), p,
                             run.mcfg.grid)[:, 0].bool()
            full = torch.where(pix[:, None] | absent, pred, x)
            rec[s:s + len(chunk)] = full.cpu().numpy()
            hidden[s:s + len(chunk)] = pix.cpu().numpy().astype(np.uint8)
            progress.advance(len(chunk))
    return len(picks)


def matching_bands(stored: np.ndarray, wanted: np.ndarray, data: Path) -> list[int]:
    """Positions in `stored` of the wavelengths `wanted` (a reconstruction's bands)."""
    try:
        return [int(np.flatnonzero(np.isclose(stored, v))[0]) for v in wanted]
    except IndexError as exc:
        raise DchagError("the reconstruction's bands are not in this data", path=data,
                         fix="score against the appl.zarr it was predicted from") from exc


def matching_samples(rg: zarr.Group, group: zarr.Group, recon: Path, data: Path) -> list[int]:
    """Positions in `data` of the reconstructed cubes, matched by their recorded source."""
    if "source" not in rg:  # written before sources were recorded: positions only
        picks = [int(k) for k in rg["sample_index"][:]]
        if max(picks) >= group["cube"].shape[0]:
            raise DchagError("the reconstruction refers to samples this data lacks", path=data)
        return picks
    where = {str(s): i for i, s in enumerate(group["source"][:])}
    wanted = [str(s) for s in rg["source"][:]]
    missing = [s for s in wanted if s not in where]
    if missing:
        raise DchagError(f"{len(missing)} of the {len(wanted)} reconstructed cubes are not in "
                         f"this data (e.g. {Path(missing[0]).name})", path=data,
                         fix=f"score against the appl.zarr {recon} was predicted from")
    return [where[s] for s in wanted]


PREDICTORS = ("model", *BASELINES)


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

    def best_baseline(self) -> str:
        return min(self.predictors[1:], key=self.rmse_of)

    def rmse_by_predictor(self) -> dict[str, float]:
        return {p: self.rmse_of(p) for p in self.predictors}


def inpainting_verdict(rmse: dict[str, float], what: str = "masked RMSE") -> str:
    """One sentence: the model (`rmse["model"]`) against the best inpainting baseline."""
    best = min((p for p in rmse if p != "model"), key=rmse.__getitem__)
    verdict = "beats" if rmse["model"] < rmse[best] else "does not beat"
    return (f"the MAE {verdict} the best inpainting baseline ({best.replace('_', ' ')}): "
            f"{what} {rmse['model']:.4f} vs {rmse[best]:.4f}, ratio "
            f"{rmse['model'] / rmse[best]:.3f}")


def eval_masks(recon: Path, data: Path, progress: Progress | None = None) -> MaskScores:
    progress = progress or NoProgress()
    rg = open_artifact(recon, "reconstruction")
    group = open_artifact(data, "appl")
    wl = rg["wavelength"][:]
    stored = group["wavelength"][:]
    bands = matching_bands(stored, wl, data)
    r0, c0, h, w = rg.attrs["crop"]
    picks = matching_samples(rg, group, recon, data)
    absent = rg["dropped"][:].astype(bool) if "dropped" in rg else np.zeros(len(wl), bool)
    n = len(PREDICTORS)
    psnr, ssim = [[] for _ in range(n)], [[] for _ in range(n)]
    mses, sams = [[] for _ in range(n)], [[] for _ in range(n)]
    absent_mses: list[list[float]] = [[] for _ in range(n)]
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
                absent_mses[p].append(float(((rec[absent] - orig[absent]) ** 2).mean()))
        for p, rec in enumerate(recs):
            a, b = band_psnr_ssim(orig, rec, hidden)
            psnr[p].append(a)
            ssim[p].append(b)
            mses[p].append(masked_mse(orig, rec, hidden))
            sams[p].append(spectral_angle(orig, rec, hidden & plant))
        for name, (lo, hi) in REGIONS.items():
            sel = (wl >= lo) & (wl <= hi)
            if sel.any():
                sq[name].append(masked_mse(orig[sel], recs[0][sel], hidden))
        progress.advance()
    with np.errstate(invalid="ignore"):
        finite_psnr = [np.nanmean(np.where(np.isinf(v), np.nan, v), axis=0) for v in psnr]
        region = {n: float(np.sqrt(np.nanmean(v))) for n, v in sq.items() if v}
        return MaskScores(wl, PREDICTORS, np.array(finite_psnr),
                          np.array([np.mean(v, axis=0) for v in ssim]), np.array(mses),
                          np.array(sams), region,
                          np.array(absent_mses) if absent.any() else None,
                          tuple(rg.attrs.get("drop_channels", [])))


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
                        "drop_channels": list(s.drop_channels), **attrs})
        if s.absent_mse_all is not None:
            dims_array(g, "absent_rmse_by_predictor", ["predictor"],
                       data=np.array(list(s.absent_rmse_by_predictor().values())),
                       fill_value=None)
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


def read_mask_scores(path: Path) -> dict[str, float]:
    """RMSE per predictor from `mask_scores.zarr` (the model alone in older stores)."""
    g = open_artifact(path, "mask_scores")
    if "predictor" not in g:
        return {"model": float(g.attrs["rmse"])}
    return {str(p): float(v) for p, v in zip(g["predictor"][:], g["rmse_by_predictor"][:],
                                              strict=True)}
