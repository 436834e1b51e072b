"""A random draw of pixel spectra from an `appl.zarr`'s cubes: what a spectral library
(the MAE's prior, the low-rank baselines) is learned from."""

from __future__ import annotations

import numpy as np
import zarr


def sample_spectra(cube: zarr.Array, samples: list[int], bands: list[int], pixels: int,
                   crop: tuple[int, int, int, int] | None = None, seed: int = 0) -> np.ndarray:
    """(pixel, band) float64: up to `pixels` spectra, shared evenly over the `samples`
    (cube positions), of `bands`, inside `crop` (row, col, height, width) if given."""
    rng = np.random.default_rng(seed)
    per = max(1, pixels // max(1, len(samples)))
    window = (slice(None), slice(None)) if crop is None else \
        (slice(crop[0], crop[0] + crop[2]), slice(crop[1], crop[1] + crop[3]))
    out = []
    for k in samples:
        c = np.asarray(cube.get_orthogonal_selection((int(k), bands, *window)), np.float64)
        flat = c.reshape(len(bands), -1).T
        out.append(flat[rng.choice(len(flat), min(per, len(flat)), replace=False)])
    return np.concatenate(out)
