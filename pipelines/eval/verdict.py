"""Who wins at each lead: the model against the trivial forecasts it must beat.

A score means little alone; what a weather scientist checks first is whether the model
beats persistence and climatology, lead by lead, on held-out data. This reads that off
`scores.zarr` (global RMSE) in one sentence per lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.times import format_lead

TRIVIAL = ("persistence", "climatology")


@dataclass
class LeadVerdict:
    lead: int
    channels: list[str]
    losses: dict[str, list[str]]  # trivial forecaster → channels where the model loses to it

    @property
    def wins_all(self) -> bool:
        return not any(self.losses.values())

    def sentence(self) -> str:
        head = f"lead {format_lead(self.lead)}:"
        if self.wins_all:
            return (f"{head} the model beats persistence and climatology in all "
                    f"{len(self.channels)} channels")
        parts = []
        for name, lost in self.losses.items():
            if lost:
                parts.append(f"{name} beats it in {', '.join(lost)}")
        beaten = [n for n, lost in self.losses.items() if not lost]
        won = f"the model beats {' and '.join(beaten)} everywhere; " if beaten else ""
        return f"{head} {won}{'; '.join(parts)}"


def lead_verdicts(scores: Path | xr.Dataset, region: str = "global") -> list[LeadVerdict]:
    ds = xr.open_zarr(scores) if isinstance(scores, str | Path) else scores
    rmse = ds["rmse"].sel(region=region)
    channels = [str(c) for c in ds["channel"].values]
    out = []
    for lead in ds["lead"].values:
        model = rmse.sel(forecaster="model", lead=lead).values
        losses = {}
        for name in TRIVIAL:
            other = rmse.sel(forecaster=name, lead=lead).values
            losses[name] = [c for c, m, o in zip(channels, model, other, strict=True)
                            if not (np.isfinite(m) and m < o)]
        out.append(LeadVerdict(int(lead), channels, losses))
    return out
