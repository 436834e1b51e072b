"""`dchag predict masks` and `dchag eval masks`: MAE reconstructions of hyperspectral cubes.

A fixed, seeded share of each cube's patches is hidden; the model reconstructs every band
of the hidden patches from the visible ones. The reconstruction keeps the visible patches
as they were, so every score measures what the model had to predict. With
`--drop-channels`, some bands are not input at all (a sensor without them): the model
reconstructs every pixel of those, the baselines interpolate them in wavelength from
their own reconstruction of the present bands, and they are scored apart as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr
from torch import Tensor

from pipelines.data.bands import band_names, select_bands
from pipelines.data.zarr_store import atomic_store, dims_array, open_artifact
from pipelines.errors import DchagError
from pipelines.eval.band_view import band_view
from pipelines.model.mae import random_masking
from pipelines.model.tokenizer import mask_pixels, unpatchify
from pipelines.progress import NoProgress, Progress
from pipelines.run.load import TrainedRun
from pipelines.train.data import describe_artifact, split_positions


def run_bands(run: TrainedRun, group: zarr.Group, data: Path) -> list[int]:
    names = band_names(group["wavelength"][:])
    missing = [b for b in run.channels if b not in names]
    if missing:
        raise DchagError(f"{len(missing)} of the run's bands are not in the data "
                         f"(e.g. {missing[0]})", path=data,
                         fix="prepare the cubes with the run's --range and --bands")
    return [names.index(b) for b in run.channels]


def run_crop(run: TrainedRun, shape: tuple[int, int], data: Path) -> tuple[int, int]:
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
    return run.model.predict(x, present, ids_keep, mask, ids_restore), mask


def predict_masks(run: TrainedRun, data: Path, out: Path, mask_ratio: float, samples: str,
                  seed: int, batch: int, device: torch.device, attrs: dict,
                  progress: Progress | None = None, drop: list[int] | None = None,
                  draws: int = 1) -> int:
    """Write `reconstruction.zarr`; returns the number of cubes reconstructed. Bands in
    `drop` (positions among the run's) are not input at all: every pixel of them is the
    model's, and `dropped` marks them for `eval masks`. With `draws` > 1 each cube is
    reconstructed under that many masks (draw d seeded `seed + d`, so draw 0 is the mask
    of a single draw): the `sample` axis holds every (draw, cube), `draw` says which."""
    progress = progress or NoProgress()
    if not 0.0 < mask_ratio < 1.0:
        raise DchagError(f"--mask-ratio {mask_ratio} must be between 0 and 1")
    if draws < 1:
        raise DchagError(f"--draws {draws} must be at least 1")
    group = open_artifact(data, "appl")
    view = band_view(run, group, data, device, dropping=bool(drop))
    bands = view.index
    dropped = np.zeros(len(bands), bool)
    dropped[drop or []] = True
    present = (torch.tensor(np.flatnonzero(~dropped), device=device) if dropped.any()
               else None)
    cube = group["cube"]
    r0, c0 = run_crop(run, cube.shape[2:], data)
    h, w = run.mcfg.img_size
    picks = held_out_picks(run, group, data, samples)
    mean = torch.tensor(run.info["mean"], dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(run.info["std"], dtype=torch.float32, device=device)[:, None, None]
    p = run.mcfg.patch
    n = len(picks) * draws
    progress.start(n, "reconstructing")
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "reconstruction", "mask_ratio": mask_ratio,
                        "seed": seed, "draws": draws, "crop": [r0, c0, h, w],
                        "data": str(Path(data).resolve()), **view.attrs(), **attrs})
        rec = dims_array(g, "reconstruction", ["sample", "band", "y", "x"],
                         shape=(n, len(bands), h, w), chunks=(1, len(bands), h, w),
                         dtype="float32", fill_value=None)
        hidden = dims_array(g, "masked", ["sample", "y", "x"], shape=(n, h, w),
                            chunks=(1, h, w), dtype="uint8", fill_value=None)
        dims_array(g, "sample_index", ["sample"], data=np.tile(picks, draws), fill_value=None)
        dims_array(g, "draw", ["sample"], data=np.repeat(np.arange(draws), len(picks)),
                   fill_value=None)
        # Which cube each one is, by its recorded source: eval matches on this, not on
        # the position, so scoring against another appl.zarr cannot pair wrong cubes.
        sources = group["source"][:]
        dims_array(g, "source", ["sample"], data=np.array(
            [str(sources[k]) for k in picks] * draws, dtype=object), fill_value=None)
        dims_array(g, "wavelength", ["band"], data=group["wavelength"][:][bands],
                   fill_value=None)
        dims_array(g, "dropped", ["band"], data=dropped.astype(np.uint8), fill_value=None)
        g.attrs["drop_channels"] = [run.channels[i] for i in np.flatnonzero(dropped)]
        absent = torch.from_numpy(dropped).to(device)[None, :, None, None]
        for d in range(draws):
            gen = torch.Generator().manual_seed(seed + d)
            for s in range(0, len(picks), batch):
                chunk = picks[s:s + batch]
                x = np.stack([cube.get_orthogonal_selection(
                    (k, bands, slice(r0, r0 + h), slice(c0, c0 + w))) for k in chunk])
                x = torch.from_numpy(x.astype(np.float32)).to(device)
                noise = torch.rand(len(chunk), run.mcfg.num_patches, generator=gen).to(device)
                xn = (view.to_model(x) - mean) / std
                with torch.no_grad():
                    pred, mask = _reconstruct(run, xn if present is None else xn[:, present],
                                              noise, mask_ratio, present)
                pred = view.to_data(unpatchify(pred.float(), p, run.mcfg.grid) * std + mean)
                pix = mask_pixels(mask, p, run.mcfg.grid)[:, 0]
                full = torch.where(pix[:, None] | absent, pred, x)
                at = d * len(picks) + s
                rec[at:at + len(chunk)] = full.cpu().numpy()
                hidden[at:at + len(chunk)] = pix.cpu().numpy().astype(np.uint8)
                progress.advance(len(chunk))
    return n


def held_out_picks(run: TrainedRun, group: zarr.Group, data: Path, samples: str) -> list[int]:
    """`--samples`: the run's held-out plants (val) or every cube (all)."""
    if samples == "all":
        return list(range(group["cube"].shape[0]))
    if samples != "val":
        raise DchagError(f"--samples {samples!r}: choose val or all")
    cfg = run.cfg.with_(init=None, tune="all", new_channels=None)  # the split alone
    picks = split_positions(describe_artifact(data, cfg), cfg, "val")
    if not picks:
        raise DchagError("the data has no validation plants for this run", path=data,
                         fix="pass --samples all")
    return picks


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
