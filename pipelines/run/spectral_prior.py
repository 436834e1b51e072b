"""A run's spectral prior, given to its MAE: the principal spectra `dchag pretrain`
recorded in model.json (`pipelines.train.spectral_prior` computes them), read by the
training ranks and by inference alike."""

from __future__ import annotations

import torch
from torch import nn


def attach_spectral_prior(model: nn.Module, info: dict, channel_dropout: float) -> None:
    """Give an MAE the basis its run recorded (none for runs without one), and say
    whether its decoder was trained on absent channels (`--channel-dropout`)."""
    if not hasattr(model, "set_spectral_prior"):
        return
    model.absent_corrected = channel_dropout > 0
    basis = info.get("spectral_basis")
    if basis is None:
        return
    weight = basis.get("weight")  # unweighted: a fit in normalised units
    model.set_spectral_prior(torch.tensor(basis["mean"], dtype=torch.float32),
                             torch.tensor(basis["components"], dtype=torch.float32),
                             None if weight is None else torch.tensor(weight,
                                                                      dtype=torch.float32))
