"""Model configuration and the size presets.

Channel groups `G` are a *model* hyperparameter: the channels are split into G contiguous
groups, each aggregated into one partial token. Tensor parallelism later assigns G/tp
whole groups to each rank, so the model computes the same function (and a checkpoint
loads unchanged) whatever the number of ranks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from pipelines.errors import DchagError

VARIANTS = ("baseline", "L", "C")
FILLS = ("biharmonic", "none")  # pipelines.model.fill.FILLS, without importing torch
CHANNEL_IMPLS = ("fused", "folded", "direct")


@dataclass(frozen=True)
class ModelConfig:
    channels: int  # size of the channel vocabulary the tokenizer knows
    img_size: tuple[int, int] = (32, 64)
    patch: int = 4
    embed_dim: int = 32
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    variant: str = "L"  # "baseline" (one cross-attention over all channels), "L" or "C"
    tree: int = 0  # extra aggregation levels inside each channel group (0, 1 or 2)
    tree_fanout: int = 4  # sub-groups per level in a tree
    groups: int | None = None  # channel groups G; None → largest of 8, 4, 2, 1 that fits
    decoder_dim: int = 16
    decoder_depth: int = 1
    decoder_heads: int = 2
    out_channels: int | None = None  # forecast outputs; None → all input channels
    # How the channel stage executes: "fused" (default: no keys or values; D-CHAG-L as one
    # matmul), "folded" (also no channel tokens for attention over channels) or "direct",
    # the reference. All compute the same function with the same parameters, so this is
    # not part of a checkpoint's identity.
    channel_impl: str = "fused"
    # MAE: what the decoder corrects — "biharmonic" inpainting of the hidden pixels or
    # "none" (the pixels from nothing, as before the fill; what a saved model without the
    # field meant).
    fill: str = "none"
    # A model extended by channels (`train forecast --new-channels`): its groups' sizes
    # (the pretrained groups, then the new channels' own), the channel id each input
    # position has (new channels sit after the forcings, in groups of their own), and how
    # many of the outputs are new (predicted by a head of their own, which also reads the
    # inputs at positions `new_head_inputs`: the new channels and the forcings). None/0:
    # even groups over inputs in order, as every model not extended.
    group_sizes: tuple[int, ...] | None = None
    input_ids: tuple[int, ...] | None = None
    new_outputs: int = 0
    new_head_inputs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.group_sizes is not None and (sum(self.group_sizes) != self.channels
                                             or min(self.group_sizes) < 1):
            raise DchagError(f"group sizes {list(self.group_sizes)} do not cover "
                             f"{self.channels} channels")
        if self.input_ids is not None and sorted(self.input_ids) != list(range(self.channels)):
            raise DchagError(f"input ids {list(self.input_ids)} are not a permutation of the "
                             f"{self.channels} channels")
        for name in ("channels", "patch", "embed_dim", "heads", "decoder_dim", "decoder_heads",
                     "tree_fanout"):
            if getattr(self, name) < 1:
                raise DchagError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.groups is not None and self.groups < 1:
            raise DchagError(f"--groups {self.groups} must be at least 1")
        if min(self.img_size) < 1 or self.depth < 0 or self.decoder_depth < 0:
            raise DchagError(f"image {self.img_size} and depths must be positive")
        if self.channel_impl not in CHANNEL_IMPLS:
            raise DchagError(f"--channel-impl {self.channel_impl!r}",
                             fix=f"choose one of {', '.join(CHANNEL_IMPLS)}")
        if self.fill not in FILLS:
            raise DchagError(f"--fill {self.fill!r}", fix=f"choose one of {', '.join(FILLS)}")
        if self.variant not in VARIANTS:
            raise DchagError(f"unknown variant {self.variant!r}", fix=f"choose one of {VARIANTS}")
        if self.tree not in (0, 1, 2):
            raise DchagError(f"--tree must be 0, 1 or 2, not {self.tree}")
        h, w = self.img_size
        if h % self.patch or w % self.patch:
            raise DchagError(f"image {h}×{w} is not divisible by patch {self.patch}",
                             fix="choose a patch size that divides both sides")
        for name, dim, heads in (("embed_dim", self.embed_dim, self.heads),
                                 ("decoder_dim", self.decoder_dim, self.decoder_heads)):
            if dim % heads:
                raise DchagError(f"{name} {dim} is not divisible by {heads} heads")
        if self.channels < 1:
            raise DchagError("a model needs at least one channel")
        if self.n_groups > self.channels:
            raise DchagError(f"{self.n_groups} channel groups but only {self.channels} channels",
                             fix="lower --groups")

    @property
    def n_groups(self) -> int:
        if self.group_sizes is not None:
            return len(self.group_sizes)
        if self.groups is not None:
            return self.groups
        return next(g for g in (8, 4, 2, 1) if g <= self.channels)

    @property
    def num_patches(self) -> int:
        return (self.img_size[0] // self.patch) * (self.img_size[1] // self.patch)

    @property
    def grid(self) -> tuple[int, int]:
        return (self.img_size[0] // self.patch, self.img_size[1] // self.patch)

    @property
    def n_out(self) -> int:
        return self.out_channels or self.channels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["img_size"] = list(self.img_size)
        for key in ("group_sizes", "input_ids", "new_head_inputs"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["img_size"] = tuple(d["img_size"])
        d.setdefault("fill", "none")
        for key in ("group_sizes", "input_ids", "new_head_inputs"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **changes)


# embed, depth, heads, decoder (dim, depth, heads). The 1b…26b sizes follow the D-CHAG
# authors' benchmark protocol (depth 32, heads 32; embed 2048/4096/6144/8192 ≈ 1.7B, 6.6B,
# 14.8B, 26.2B parameters); `base` is their hyperspectral MAE.
PRESETS: dict[str, dict] = {
    "tiny": dict(embed_dim=32, depth=2, heads=4, decoder_dim=16, decoder_depth=1,
                 decoder_heads=2),
    "small": dict(embed_dim=128, depth=4, heads=4, decoder_dim=64, decoder_depth=2,
                  decoder_heads=4),
    "base": dict(embed_dim=512, depth=8, heads=16, decoder_dim=128, decoder_depth=2,
                 decoder_heads=4),
    "1b": dict(embed_dim=2048, depth=32, heads=32, decoder_dim=512, decoder_depth=4,
               decoder_heads=16),
    "7b": dict(embed_dim=4096, depth=32, heads=32, decoder_dim=512, decoder_depth=4,
               decoder_heads=16),
    "15b": dict(embed_dim=6144, depth=32, heads=32, decoder_dim=512, decoder_depth=4,
                decoder_heads=16),
    "26b": dict(embed_dim=8192, depth=32, heads=32, decoder_dim=512, decoder_depth=4,
                decoder_heads=16),
}


def preset_config(name: str, channels: int, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise DchagError(f"unknown model preset {name!r}",
                         fix=f"choose one of {', '.join(PRESETS)}")
    return ModelConfig(channels=channels, **{**PRESETS[name], **overrides})


def parse_size(text: str) -> tuple[int, int]:
    """`128x256` → (128, 256)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise DchagError(f"{text!r} is not HEIGHTxWIDTH, e.g. 32x64") from exc
    if h < 1 or w < 1:
        raise DchagError(f"{text!r}: height and width must be at least 1 pixel")
    return h, w
