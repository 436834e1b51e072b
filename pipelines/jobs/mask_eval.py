"""`dchag eval masks` as one library call: score the reconstructions beside the
inpainting baselines, write mask_scores.zarr and the figures, staged together."""

from __future__ import annotations

from pathlib import Path

from pipelines.data.zarr_store import open_artifact
from pipelines.errors import DchagError
from pipelines.eval.mask_scores import MaskScores, eval_masks
from pipelines.eval.mask_store import write_mask_scores
from pipelines.guard import output_folder
from pipelines.progress import Progress
from pipelines.provenance import provenance

ITEMS = {"mask_scores.zarr": "mask_scores", "reconstruction.png": None, "spectra.png": None}


def run_mask_eval(recon: Path, data: Path, sample: int, out_dir: Path | None,
                  progress: Progress | None = None) -> tuple[MaskScores, Path, int]:
    """The scores, the folder they were written to (beside the reconstruction by
    default), and the number of reconstructed cubes."""
    from pipelines.plots.masks import plot_reconstruction
    from pipelines.plots.spectra import plot_spectra

    out_dir = out_dir or recon.parent
    n = open_artifact(recon, "reconstruction")["sample_index"].shape[0]
    if not 0 <= sample < n:
        raise DchagError(f"--sample {sample} out of range ({n} reconstructed cubes)")
    with output_folder(out_dir, ITEMS, True, [recon, data]) as stage:
        scores = eval_masks(recon, data, progress)
        write_mask_scores(scores, stage / "mask_scores.zarr", {
            "reconstruction": str(recon.resolve()),
            "provenance": provenance("eval masks", {}, [recon, data], seed=None)})
        plot_reconstruction(recon, data, sample, stage / "reconstruction.png", scores)
        plot_spectra(recon, data, sample, stage / "spectra.png", scores)
    return scores, out_dir, n
