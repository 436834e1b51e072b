"""`dchag eval bands` as one library call: the held-out cubes and the spectral library
read once, the band study, then `band_importance.zarr` and `bands.png`, staged together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipelines.data.zarr_store import atomic_store, dims_array, open_artifact
from pipelines.errors import DchagError
from pipelines.eval.absent_bands import library
from pipelines.eval.band_importance import (
    PICKERS,
    RECONSTRUCTORS,
    BandStudy,
    HeldOut,
    ModelReconstructor,
    study_bands,
    verdict,
)
from pipelines.eval.masks import held_out_picks, run_bands, run_crop
from pipelines.guard import output_folder
from pipelines.progress import Progress
from pipelines.provenance import provenance
from pipelines.run.load import TrainedRun

ITEMS = {"band_importance.zarr": "band_importance", "bands.png": None}


def held_out_cubes(run: TrainedRun, data: Path, samples: str) -> HeldOut:
    """The run's held-out cubes (`samples` "val") or every cube ("all"), inside the crop
    the model sees; the library comes from the cubes not scored."""
    group = open_artifact(data, "appl")
    bands = run_bands(run, group, data)
    r0, c0 = run_crop(run, group["cube"].shape[2:], data)
    h, w = run.mcfg.img_size
    picks = held_out_picks(run, group, data, samples)
    basis = library(group, bands, set(picks), (r0, c0, h, w))
    if basis is None:
        raise DchagError("every cube is scored, so none is left for the spectral library "
                         "of the low-rank fit and the PCA picks", path=data,
                         fix="use --samples val (the run's held-out plants)")
    cubes = np.stack([group["cube"].get_orthogonal_selection(
        (k, bands, slice(r0, r0 + h), slice(c0, c0 + w))) for k in picks]).astype(np.float64)
    plant = np.stack([group["mask"][k, r0:r0 + h, c0:c0 + w] for k in picks]).astype(bool)
    return HeldOut(cubes, plant, group["wavelength"][:][bands], basis,
                   [str(group["source"][k]) for k in picks])


def write_band_study(s: BandStudy, out: Path, attrs: dict) -> None:
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "band_importance", "max_k": s.max_k,
                        "sources": s.sources, "verdict": verdict(s), **attrs})
        dims_array(g, "wavelength", ["band"], data=s.wavelength, fill_value=None)
        dims_array(g, "group_lo_nm", ["group"], data=s.edges[:, 0], fill_value=None)
        dims_array(g, "group_hi_nm", ["group"], data=s.edges[:, 1], fill_value=None)
        dims_array(g, "group_absent_rmse", ["group"], data=s.group_rmse, fill_value=None)
        dims_array(g, "group_absent_sam_deg", ["group"], data=s.group_sam, fill_value=None)
        dims_array(g, "candidate_band", ["group"], data=s.candidates, fill_value=None)
        dims_array(g, "picker", ["picker"], data=np.array(PICKERS), fill_value=None)
        dims_array(g, "reconstructor", ["reconstructor"], data=np.array(RECONSTRUCTORS),
                   fill_value=None)
        dims_array(g, "k", ["k"], data=np.arange(1, s.max_k + 1), fill_value=None)
        wl = np.where(s.picks >= 0, s.wavelength[np.maximum(s.picks, 0)], np.nan)
        dims_array(g, "picked_nm", ["picker", "k", "slot"], data=wl, fill_value=None)
        dims_array(g, "rmse", ["picker", "reconstructor", "k"], data=s.rmse, fill_value=None)
        dims_array(g, "sam_deg", ["picker", "reconstructor", "k"], data=s.sam,
                   fill_value=None)


def run_band_eval(run: TrainedRun, data: Path, groups: int, max_k: int, samples: str,
                  out_dir: Path, device: torch.device,
                  progress: Progress | None = None) -> BandStudy:
    from pipelines.plots.bands import plot_bands

    if groups < 2:
        raise DchagError(f"--groups {groups} must be at least 2")
    if not 1 <= max_k <= groups:
        raise DchagError(f"--k {max_k} must be between 1 and --groups ({groups})")
    held = held_out_cubes(run, data, samples)
    with output_folder(out_dir, ITEMS, True, [run.path, data]) as stage:
        study = study_bands(held, ModelReconstructor(run, device), groups, max_k, progress)
        write_band_study(study, stage / "band_importance.zarr", {
            "run": str(Path(run.path).resolve()), "checkpoint_step": run.step,
            "data": str(Path(data).resolve()),
            "provenance": provenance("eval bands", {"groups": groups, "k": max_k,
                                                    "samples": samples}, [data], seed=None)})
        plot_bands(study, stage / "bands.png")
    return study
