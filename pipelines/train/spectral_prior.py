"""The MAE's spectral prior: the principal spectra of the run's training cubes, so a band
absent from the input starts from the low-rank fit of the bands present.

Hyperspectral reflectance is close to low-rank — a few endmembers (leaf, soil, shadow)
mix into every pixel — so the present bands of a pixel pin down its absent ones far
better than any spatial neighbour can. The prior is computed once, when the run is made,
from the training split only (normalised with the run's own statistics), written into
model.json (`spectral_basis`), and read back by every rank and by inference
(`pipelines.run.spectral_prior`): it is part of what the run is, like its
normalisation, and holds no trainable parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.data.pixel_spectra import sample_spectra
from pipelines.model.low_rank import principal_spectra

if TYPE_CHECKING:  # the data module imports zarr, which inference on a GPU must not need
    from pipelines.run.config import TrainConfig
    from pipelines.train.data import Artifact

PRIOR_PIXELS = 20000  # spectra drawn from the training cubes: plenty for ≤ 16 components


def training_basis(art: Artifact, cfg: TrainConfig) -> dict | None:
    """{"mean": (C,), "components": (k, C), "weight": (C,)}, or None where the run has no
    use for one (weather, or an MAE without a first guess: `--fill none`). The principal
    spectra are those of reflectance, expressed in the run's normalised units; `weight`
    (the normalisation's std) makes the MAE's fit least squares in reflectance, the
    units every score is in."""
    import zarr

    from pipelines.train.data import split_positions

    if art.kind != "appl" or cfg.task != "mae" or cfg.fill == "none":
        return None
    cube = zarr.open_group(str(art.path), mode="r")["cube"]
    spectra = sample_spectra(cube, split_positions(art, cfg, "train"), art.channel_index,
                             PRIOR_PIXELS)
    mean, comps = principal_spectra(spectra)
    return {"mean": ((mean - art.mean) / art.std).tolist(),
            "components": (comps / art.std).tolist(), "weight": art.std.tolist()}
