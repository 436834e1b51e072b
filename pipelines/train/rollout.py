"""The forecasting loss, over one step or a chain of the model's own predictions.

Rollout training (Stormer, GraphCast): from x(t) the model predicts x̂₁ for t + ℓ, then is
fed x̂₁ (constant fields carried over, forcings recomputed for each step's time) to predict
x̂₂ for t + 2ℓ, and so on for K steps; the loss is the mean of the K steps' losses,

    L = (1/K) Σ_k ‖(x̂_k − x(t + kℓ)) / σ_ℓ‖²_lat ,

so K = 1 is exactly the direct step. The gradient flows through the whole chain (as in
GraphCast, not truncated to each step): the point is to teach the model what its own
errors do to the next step, and a detached input would hide precisely that. The cost is
K forward/backward passes and K steps of activations per sample.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from pipelines.data.forcings import with_forcings
from pipelines.model.forecast import scaled_forecast_mse


def rollout_loss(model: nn.Module, x: Tensor, y: Tensor, lead: Tensor, time: Tensor,
                 lat: Tensor, grid: tuple[np.ndarray, np.ndarray] | None,
                 keep: Tensor | None = None) -> Tensor:
    """x (B, C, H, W) and y (B, K, C_out, H, W) normalised; lead and time (B,) in hours
    (time: of x); `grid` (lat, lon in degrees) when the model takes forcings; `keep`: the
    input channels present (`--channel-dropout`; None: all)."""
    steps = y.shape[1]
    scale = model.step_scale(lead)  # type: ignore[operator]
    if keep is not None:
        # An output whose own input is absent has no state to add a change to: it is
        # predicted whole, and its error counted in state units (its σ is 1, normalised)
        # — in σ_lead units it would be tens of times larger and swamp the loss.
        present = torch.isin(model.out_index, keep)  # type: ignore[arg-type]
        scale = torch.where(present[None, :, None, None], scale, torch.ones_like(scale))
    state = x
    total = x.new_zeros(())
    for k in range(steps):
        inputs = state if grid is None else with_forcings(state, time + k * lead, lead, *grid)
        pred = model(inputs if keep is None else inputs[:, keep], lead, keep)
        total = total + scaled_forecast_mse(pred, y[:, k], scale, lat)
        if k + 1 < steps:  # the prediction replaces what it forecast; constants stay
            state = state.index_copy(1, model.out_index, pred.to(state.dtype))  # type: ignore[arg-type]
    return total / steps
