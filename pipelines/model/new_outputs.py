"""The output path of channels added to a trained forecaster (`train forecast
--new-channels`).

A backbone trained without a variable need not carry what that variable's forecast
needs: a forecaster trained without t2m had no output that depends on the hour of the
day, and a linear layer on its frozen features could not learn t2m's 6-hour change (the
diurnal cycle), staying worse than persistence at 6 h whatever the steps. So the new
outputs' head reads, beside the backbone's features, its own channels' state and the
forcings (local time, insolation) at each patch: a small MLP that learns the local part
of the change while the frozen backbone supplies the large-scale context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.model.tokenizer import patchify


class ZeroStartLinear(nn.Linear):
    """A layer that starts at zero (`init.py`): the new channels' first forecast is
    persistence, the baseline they must beat, and training moves it from there rather
    than from a random field."""


class NewOutputsHead(nn.Module):
    def __init__(self, embed_dim: int, local_inputs: int, outputs: int, patch: int):
        super().__init__()
        self.patch = patch
        self.hidden = nn.Linear(embed_dim + local_inputs * patch**2, embed_dim)
        self.out = ZeroStartLinear(embed_dim, outputs * patch**2)

    def forward(self, features: Tensor, local: Tensor) -> Tensor:
        """features (B, L, D) from the encoder, local (B, k, H, W) the new channels'
        inputs and the forcings → (B, L, outputs · p²)."""
        b, length, _ = features.shape
        patches = patchify(local.to(features.dtype), self.patch).reshape(b, length, -1)
        return self.out(F.gelu(self.hidden(torch.cat([features, patches], dim=-1))))
