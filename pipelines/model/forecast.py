"""Forecasting head: predict all output channels at t + lead from the state at t."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipelines.model.config import ModelConfig
from pipelines.model.encoder import DCHAGEncoder
from pipelines.model.new_outputs import NewOutputsHead
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
    taken from the input at the positions `out_index`. With `lead_scale` {lead: σ per
    output channel} (tendency targets, `pipelines/run/tendency.py`) that change is
    σ_lead ⊙ network output; without it σ = 1 (state-normalised residuals).
    """

    def __init__(self, cfg: ModelConfig, out_index: list[int] | None = None,
                 residual: bool = True, lead_scale: dict[int, list[float]] | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = DCHAGEncoder(cfg)
        self.lead_embed = nn.Linear(1, cfg.embed_dim)
        known = cfg.n_out - cfg.new_outputs
        self.head = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.embed_dim), nn.GELU(),
                                  nn.Linear(cfg.embed_dim, known * cfg.patch**2))
        # Outputs added to a trained forecaster (`--new-channels`) get a head of their own
        # (`new_outputs.py`), so they train while the rest stays as it was.
        self.new_head = (NewOutputsHead(cfg.embed_dim, len(cfg.new_head_inputs or ()),
                                        cfg.new_outputs, cfg.patch)
                         if cfg.new_outputs else None)
        index = out_index if out_index is not None else list(range(cfg.n_out))
        if len(index) != cfg.n_out:
            raise ValueError(f"out_index has {len(index)} entries for {cfg.n_out} outputs")
        self.index = list(index)
        self.register_buffer("out_index", torch.tensor(index, dtype=torch.long),
                             persistent=False)
        self.residual = residual
        self.lead_scale = {int(k): list(v) for k, v in (lead_scale or {}).items()}
        for lead, values in self.lead_scale.items():
            if len(values) != cfg.n_out:
                raise ValueError(f"lead_scale[{lead}] has {len(values)} entries for "
                                 f"{cfg.n_out} outputs")
        leads, scales = self._scale_tables()
        self.register_buffer("scale_leads", leads, persistent=False)
        self.register_buffer("scale_values", scales, persistent=False)

    def _scale_tables(self, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        leads = sorted(self.lead_scale)
        return (torch.tensor(leads, dtype=torch.float32, device=device),
                torch.tensor([self.lead_scale[k] for k in leads], dtype=torch.float32,
                             device=device).reshape(len(leads), self.cfg.n_out))

    def reset_buffers(self) -> None:
        device = self.out_index.device
        self.out_index = torch.tensor(self.index, dtype=torch.long, device=device)
        self.scale_leads, self.scale_values = self._scale_tables(device)

    def step_scale(self, lead_hours: Tensor) -> Tensor:
        """σ of each sample's lead: (B, C_out, 1, 1); ones for state-normalised residuals."""
        b = lead_hours.shape[0]
        if not self.lead_scale:
            return torch.ones(b, self.cfg.n_out, 1, 1, device=lead_hours.device)
        hit = lead_hours.float()[:, None] == self.scale_leads[None, :]
        if not bool(hit.any(dim=1).all()):
            raise ValueError(f"no tendency scale for lead(s) "
                             f"{sorted(set(lead_hours[~hit.any(dim=1)].tolist()))} h; "
                             f"the model knows {sorted(self.lead_scale)}")
        return self.scale_values[hit.float().argmax(dim=1)][:, :, None, None]

    def forward(self, x: Tensor, lead_hours: Tensor, channel_ids: Tensor | None = None) -> Tensor:
        lead = self.lead_embed((lead_hours.to(x.dtype) / 100.0)[:, None])[:, None, :]
        z = self.encoder(x, channel_ids, add=lead)  # (B, L, D)
        b, length, _ = z.shape
        if self.new_head is None:
            out = self.head(z)
        else:
            local = self.inputs_at(x, channel_ids, list(self.cfg.new_head_inputs or ()))
            out = torch.cat([self.head(z), self.new_head(z, local)], dim=-1)
        out = out.view(b, length, self.cfg.n_out, self.cfg.patch**2)
        out = unpatchify(out, self.cfg.patch, self.cfg.grid)
        if self.residual:
            if self.lead_scale:
                out = out * self.step_scale(lead_hours).to(out.dtype)
            out = out + self.residual_base(x, channel_ids)
        return out

    def residual_base(self, x: Tensor, channel_ids: Tensor | None) -> Tensor:
        """The state each output's change is added to. With a channel subset, an output
        whose input is absent starts from 0 — the training mean, in normalised units."""
        return self.inputs_at(x, channel_ids, self.out_index)

    def inputs_at(self, x: Tensor, channel_ids: Tensor | None,
                  index: Tensor | list[int]) -> Tensor:
        """The inputs at full-input positions `index`; with a channel subset, 0 for those
        absent."""
        index = torch.as_tensor(index, dtype=torch.long, device=x.device)
        if channel_ids is None:
            return x[:, index]
        where = torch.full((self.cfg.channels,), -1, dtype=torch.long, device=x.device)
        where[channel_ids] = torch.arange(channel_ids.numel(), device=x.device)
        pos = where[index]
        present = (pos >= 0).to(x.dtype)[None, :, None, None]
        return x[:, pos.clamp(min=0)] * present


def scaled_forecast_mse(pred: Tensor, target: Tensor, scale: Tensor, lat_deg: Tensor
                        ) -> Tensor:
    """The training loss: latitude-weighted MSE of the error in units of σ_lead (`scale`,
    (B, C_out, 1, 1); ones for state targets, where this is the plain normalised MSE)."""
    return lat_weighted_mse(pred.float() / scale, target.float() / scale, lat_deg)

