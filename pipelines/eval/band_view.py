"""Which of a store's bands a model reads, and how they reach its own bands.

A store holding every band of the run (in any order, beside others) is read band by band,
by name. A store from another instrument — other centres, other widths, fewer bands, a
gap — is read through its spectral response (`data.sensor_bands`): its bands are lifted
to the model's, the model predicts its own bands, and the prediction is projected back
onto the store's bands, so every score is in the store's own bands, beside baselines that
never left them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import Tensor

from pipelines.data.bands import band_names
from pipelines.data.sensor_bands import SensorMap, recorded_bands, sensor_map, store_bands
from pipelines.errors import DchagError
from pipelines.notes import note
from pipelines.run.channel_match import match_channels
from pipelines.run.load import TrainedRun


@dataclass
class BandView:
    index: list[int]  # positions in the store of the bands read (and written out)
    sensor: SensorMap | None = None  # None: the store holds the run's own bands
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.sensor is not None:
            s = self.sensor
            self._lift = torch.tensor(s.lift, dtype=torch.float32, device=self.device)
            self._offset = torch.tensor(s.offset, dtype=torch.float32, device=self.device)
            self._project = torch.tensor(s.project, dtype=torch.float32, device=self.device)

    def to_model(self, x: Tensor) -> Tensor:
        """Reflectance in the store's bands (B, M, H, W) → in the run's (B, C, H, W)."""
        if self.sensor is None:
            return x
        return torch.einsum("cm,bmhw->bchw", self._lift, x) + self._offset[:, None, None]

    def to_data(self, x: Tensor) -> Tensor:
        """Reflectance in the run's bands → in the store's (the bands `index` names)."""
        if self.sensor is None:
            return x
        return torch.einsum("mc,bchw->bmhw", self._project, x)

    def attrs(self) -> dict:
        if self.sensor is None:
            return {"band_view": "the run's bands"}
        s = self.sensor
        return {"band_view": "spectral response", "band_lift": s.method,
                "bands_not_covered": int(s.uncovered.size),
                "run_bands_outside_data": s.outside}


def spectral_prior(run: TrainedRun) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's principal spectra in reflectance (model.json keeps them normalised)."""
    basis = run.info.get("spectral_basis")
    if basis is None:
        return None
    mu, sd = np.asarray(run.info["mean"]), np.asarray(run.info["std"])
    return (np.asarray(basis["mean"]) * sd + mu, np.asarray(basis["components"]) * sd)


def band_view(run: TrainedRun, group: zarr.Group, data: Path, device: torch.device,
              dropping: bool = False) -> BandView:
    """How `run` reads `data`: by name when the store holds every band of the run, else
    through the bands' spectral response (with a note saying so and what it costs)."""
    names = band_names(group["wavelength"][:])
    match = match_channels(run.channels, names)
    if not match.missing:
        for text in match.notes("bands"):
            note(text)
        return BandView(match.index, device=device)
    if dropping:
        raise DchagError("--drop-channels names bands of the run, but the data holds another "
                         "band set", path=data,
                         fix="drop bands only on data with the run's bands")
    model_nm, model_fwhm = recorded_bands(run.info, run.channels)
    data_nm, data_fwhm = store_bands(group)
    s = sensor_map(model_nm, model_fwhm, data_nm, data_fwhm, spectral_prior(run))
    note(f"the data's {data_nm.size} bands ({data_nm.min():g}–{data_nm.max():g} nm) are "
         f"not the run's {model_nm.size} ({model_nm.min():g}–{model_nm.max():g} nm): read "
         f"through their spectral response, lifted by {s.method}")
    if s.uncovered.size:
        note(f"{s.uncovered.size} of the data's bands lie outside the run's range and are "
             "neither input nor scored")
    if s.outside:
        note(f"{s.outside} of the run's bands lie beyond the data's range: estimated from "
             "the bands present")
    return BandView(list(map(int, s.data_index)), s, device)
