"""What training and evaluation need to know about one data artifact.

Its own module so the hooks that adapt an artifact (another sensor's bands, an extended
forecaster's statistics) can name the type without importing the loader that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.data.sensor_bands import SensorMap
from pipelines.run.periods import Periods
from pipelines.run.tendency import normalised_scale


@dataclass
class Artifact:
    """What the model needs to know about a data artifact."""

    kind: str  # "era5" or "appl"
    path: Path
    channel_names: list[str]  # the run's channels, in model order
    channel_index: list[int]  # their positions in the artifact
    img_size: tuple[int, int]  # what the model sees (the crop, if any)
    full_size: tuple[int, int]  # as stored
    mean: np.ndarray  # per run channel
    std: np.ndarray
    out_index: list[int]  # forecast: positions (in run channels) of the targets
    periods: Periods | None = None  # weather: train / validation / test periods
    # forecast: σ per lead (physical), the run's own: measured once when the run is made
    # (`resolve.tendency_table`), then read from its model.json
    tendency_std: dict[int, list[float]] | None = None
    forcings: tuple[str, ...] = ()  # forecast: computed inputs appended after the channels
    # another instrument's cubes, read in their bands and lifted to the model's
    # (`sensor_data`: fine-tuning a pretrained MAE with --init on them)
    sensor: SensorMap | None = None

    @property
    def model_channels(self) -> int:
        return len(self.channel_names) + len(self.forcings)

    def lead_scale(self) -> dict[int, list[float]] | None:
        """σ_lead in units of the targets' state std, as the model uses it."""
        return normalised_scale(self.tendency_std, self.std[self.out_index])
