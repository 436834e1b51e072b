"""Fine-tuning a pretrained MAE on cubes of another instrument.

With `--init RUN` on an appl.zarr that lacks the run's bands (other centres, widths or
count), the new run keeps the pretrained model's bands, normalisation and spectral prior:
each batch is read in the store's own bands and lifted to the model's through their
spectral response (`data.sensor_bands`), exactly as inference reads such a store
(`eval.band_view`). `--tune channels` then trains only what is per band, so the shared
backbone a sensor does not change stays as it was pretrained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import zarr
from torch import Tensor

from pipelines.data.bands import band_names
from pipelines.data.sensor_bands import SensorMap, recorded_bands, sensor_map, store_bands
from pipelines.errors import DchagError
from pipelines.run.model_file import saved_info

if TYPE_CHECKING:
    from pipelines.run.config import TrainConfig
    from pipelines.train.artifact import Artifact


def prior_in_reflectance(info: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """A run's principal spectra in reflectance (model.json keeps them normalised)."""
    basis = info.get("spectral_basis")
    if basis is None:
        return None
    mu, sd = np.asarray(info["mean"]), np.asarray(info["std"])
    return np.asarray(basis["mean"]) * sd + mu, np.asarray(basis["components"]) * sd


def through_init_bands(art: Artifact, cfg: TrainConfig) -> Artifact:
    """`art` as the pretrained run (--init) sees it: unchanged when the store holds the
    run's bands, else read through their spectral response in the run's bands."""
    info = saved_info(Path(cfg.init or ""))
    names = list(info["channel_names"])
    group = zarr.open_group(str(art.path), mode="r")
    if set(names) <= set(band_names(group["wavelength"][:])):
        return art
    if cfg.channels:
        raise DchagError("--channels picks bands of the data, but with --init on another band "
                         "set the run keeps the pretrained model's bands", path=art.path,
                         fix="leave out --channels")
    if cfg.channel_dropout:
        raise DchagError("--channel-dropout drops the model's bands, which another sensor's "
                         "cubes do not hold", path=art.path, fix="leave out --channel-dropout")
    s = sensor_map(*recorded_bands(info, names), *store_bands(group), prior_in_reflectance(info))
    return replace(art, channel_names=names, channel_index=list(map(int, s.data_index)),
                   mean=np.asarray(info["mean"], np.float64),
                   std=np.asarray(info["std"], np.float64), sensor=s)


def lift_batch(sensor: SensorMap | None, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Batches (B, M, H, W) in the store's bands → (B, C, H, W) in the model's."""
    if sensor is None:
        return lambda x: x
    lift = torch.tensor(sensor.lift, dtype=torch.float32, device=device)
    offset = torch.tensor(sensor.offset, dtype=torch.float32, device=device)[:, None, None]
    return lambda x: torch.einsum("cm,bmhw->bchw", lift, x.float()) + offset


def sensor_record(art: Artifact) -> dict | None:
    """What model.json says of the store a run was trained through (None: its own bands)."""
    if art.sensor is None:
        return None
    g = zarr.open_group(str(art.path), mode="r")
    nm, fwhm = store_bands(g)
    return {"wavelength_nm": nm[art.channel_index].tolist(),
            "fwhm_nm": fwhm[art.channel_index].tolist(), "lift": art.sensor.method}
