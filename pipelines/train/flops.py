"""Model FLOPs of one training step, counted on the meta device (no memory, no compute).

Counted once for the whole model on one data-parallel rank's batch; a rank's share is
that divided by tp (D-CHAG splits the channel work and the ViT evenly over tp; the small
replicated parts — final aggregation, heads — are not counted twice, as MFU conventions
count model FLOPs, not recomputation or replication).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipelines.model.config import ModelConfig
from pipelines.model.forecast import Forecaster, lat_weighted_mse
from pipelines.model.mae import MAE

# Dense bf16 peak per GPU (vendor data sheets), for MFU.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "MI250X": 191.5e12}


def step_flops(mcfg: ModelConfig, task: str, batch: int, mask_ratio: float) -> int:
    """Forward + backward FLOPs of one step on `batch` samples."""
    with torch.device("meta"):
        h, w = mcfg.img_size
        x = torch.randn(batch, mcfg.channels, h, w)
        if task == "mae":
            model = MAE(mcfg)
            noise = torch.rand(batch, mcfg.num_patches)
        else:
            model = Forecaster(mcfg)
            lead = torch.full((batch,), 24.0)
            lat = torch.linspace(-87.0, 87.0, h)
        with FlopCounterMode(display=False) as counter:
            if task == "mae":
                loss = model(x, mask_ratio=mask_ratio, noise=noise)[0]
            else:
                loss = lat_weighted_mse(model(x, lead), x[:, : mcfg.n_out], lat)
            loss.backward()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device) -> float | None:
    """The GPU's dense bf16 peak, or None where unknown (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16.items():
        if key in name:
            return value
    return None
