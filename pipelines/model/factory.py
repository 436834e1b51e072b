"""The one place that decides which network a task gets: the MAE for pretraining, the
forecaster (with its head's options) for forecasting."""

from __future__ import annotations

from typing import Any

from torch import nn

from pipelines.errors import DchagError
from pipelines.model.config import ModelConfig
from pipelines.model.forecast import Forecaster
from pipelines.model.mae import MAE


def make_model(cfg: ModelConfig, task: str, **forecast: Any) -> nn.Module:
    """`forecast` (out_index, residual, lead_scale) reaches the forecaster only."""
    if task == "mae":
        return MAE(cfg)
    if task == "forecast":
        return Forecaster(cfg, **forecast)
    raise DchagError(f"task {task!r} has no model", fix="choose mae or forecast")
