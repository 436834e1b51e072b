"""Forecasting head: predict all output channels at t + lead from the state at t."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipelines.model.config import ModelConfig
from pipelines.model.encoder import DCHAGEncoder
from pipelines.model.tokenizer import unpatchify


def latitude_weights(lat_deg: Tensor) -> Tensor:
    """cos(lat) / mean(cos(lat)): every grid cell counts by its area (WeatherBench)."""
    w = torch.cos(torch.deg2rad(lat_deg.double()))
    return (w / w.mean()).float()


def lat_weighted_mse(pred: Tensor, target: Tensor, lat_deg: Tensor) -> Tensor:
    """Mean over batch, channels and grid of the latitude-weighted squared error."""
    w = latitude_weights(lat_deg).to(pred.device)[:, None]  # (H, 1)
    return (((pred.float() - target.float()) ** 2) * w).mean()


class Forecaster(nn.Module):
    """(B, C, H, W) at t and lead hours (B,) → (B, C_out, H, W) at t + lead.

    Lead time enters as `Linear(1, D)` of hours/100 added to every token (as in ClimaX).
    With `residual`, the network predicts the change of the output channels, which are
    taken from the input at the positions `out_index`.
    """

    def __init__(self, cfg: ModelConfig, out_index: list[int] | None = None,
                 residual: bool = True):
        super().__init__()
        self.cfg = cfg
        self.encoder = DCHAGEncoder(cfg)
        self.lead_embed = nn.Linear(1, cfg.embed_dim)
        self.head = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.embed_dim), nn.GELU(),
                                  nn.Linear(cfg.embed_dim, cfg.n_out * cfg.patch**2))
        index = out_index if out_index is not None else list(range(cfg.n_out))
        if len(index) != cfg.n_out:
            raise ValueError(f"out_index has {len(index)} entries for {cfg.n_out} outputs")
        self.index = list(index)
        self.register_buffer("out_index", torch.tensor(index, dtype=torch.long),
                             persistent=False)
        self.residual = residual

    def reset_buffers(self) -> None:
        self.out_index = torch.tensor(self.index, dtype=torch.long, device=self.out_index.device)

    def forward(self, x: Tensor, lead_hours: Tensor, channel_ids: Tensor | None = None) -> Tensor:
        lead = self.lead_embed((lead_hours.to(x.dtype) / 100.0)[:, None])[:, None, :]
        z = self.encoder(x, channel_ids, add=lead)  # (B, L, D)
        b, length, _ = z.shape
        out = self.head(z).view(b, length, self.cfg.n_out, self.cfg.patch**2)
        out = unpatchify(out, self.cfg.patch, self.cfg.grid)
        if self.residual:
            out = out + x[:, self.out_index]
        return out


def forecast_loss(model: Forecaster, x: Tensor, y: Tensor, lead_hours: Tensor,
                  lat_deg: Tensor) -> Tensor:
    return lat_weighted_mse(model(x, lead_hours), y, lat_deg)

