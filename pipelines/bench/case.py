"""One benchmark configuration: model, channels, layout, and how the step is run.

The D-CHAG authors' protocol is the default: the forecasting model (ClimaX-style, every
patch of every channel tokenized, 5 outputs), synthetic data, batch 2 per rank, FSDP
mixed precision (fp32 master weights and optimizer state, bf16 compute), activation
checkpointing of the transformer blocks and of the channel stage, AdamW with
`foreach=True` (CUDA's default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipelines.model.config import ModelConfig, preset_config

N_OUT = 5  # forecast outputs, as in the authors' ERA5 model
MODES = ("real", "fake", "estimate")


@dataclass(frozen=True)
class Case:
    preset: str
    channels: int
    variant: str
    tree: int
    tp: int
    img: tuple[int, int]
    patch: int
    batch: int = 2
    dp: int = 1
    channel_impl: str = "fused"
    aggregation: str = "head-split"  # the all-input aggregation over TP: or "replicated"
    ac: bool = True
    ac_channels: bool = True
    task: str = "forecast"  # or "mae" (75% of patches masked)
    groups: int | None = None  # channel groups; None: max(8, tp)
    out_channels: int = N_OUT  # forecast outputs
    compile: bool = False  # torch.compile each transformer block

    def model_config(self) -> ModelConfig:
        groups = self.groups or max(8, self.tp) if self.variant != "baseline" else None
        out = {"out_channels": self.out_channels} if self.task == "forecast" else {}
        return preset_config(self.preset, self.channels, variant=self.variant, tree=self.tree,
                             groups=min(groups, self.channels) if groups else None,
                             img_size=self.img, patch=self.patch,
                             channel_impl=self.channel_impl, **out)

    @property
    def world(self) -> int:
        return self.tp * self.dp

    @property
    def kind(self) -> str:
        """How the all-input aggregation runs, named in every output."""
        ckpt = ", checkpointed" if self.ac_channels else ""
        return f"{self.aggregation}{ckpt}, {self.channel_impl}"

    def record(self) -> dict:
        d = asdict(self)
        d["img"] = f"{self.img[0]}x{self.img[1]}"
        d["aggregation_kind"] = self.kind
        return d
