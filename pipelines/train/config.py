"""The resolved configuration of a training run.

Precedence, lowest first: the defaults below, a `--config` file (TOML or YAML, parsed with
safe loaders, never executed), the run being resumed, then the flags given on the command
line. The resolved config is saved in the run directory; resuming or fine-tuning checks
that the model it describes matches the checkpoint.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import DchagError

TASKS = ("mae", "forecast")
PRECISIONS = ("auto", "bf16", "fp32")
# Fields that define the model: a checkpoint only loads into a run that agrees on these.
MODEL_FIELDS = ("task", "preset", "variant", "tree", "groups", "patch", "crop", "channels",
                "out_channels")


@dataclass(frozen=True)
class TrainConfig:
    task: str = "mae"
    data: str = ""
    out: str = "run"
    # model
    preset: str = "tiny"
    variant: str = "L"
    tree: int = 0
    groups: int | None = None
    patch: int = 4
    crop: list[int] | None = None  # hyperspectral: random crops HEIGHT, WIDTH
    channels: list[str] | None = None  # None: every channel of the artifact
    out_channels: list[str] | None = None  # forecast targets; None: the era5 key variables
    # parallelism
    gpus: int = 1
    tp: int | None = None  # None: all ranks
    ac: bool = False
    precision: str = "auto"  # bf16 on GPU, fp32 on CPU
    timeout_min: float = 10.0
    # optimisation
    steps: int = 1000
    stop_at: int | None = None  # checkpoint and exit early at this step (job time limits)
    batch_size: int = 8  # global, over all data-parallel ranks
    lr: float = 1.5e-4
    min_lr: float = 1e-6
    warmup: int | None = None  # None: 5% of the steps
    weight_decay: float = 0.05
    clip: float = 1.0
    seed: int = 0
    # task
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    leads: list[int] = field(default_factory=lambda: [6, 24, 72, 168])  # hours
    init: str | None = None  # forecast: start from this (pretrained) run
    val_fraction: float = 0.1
    val_batches: int = 4
    # bookkeeping
    workers: int = 2
    log_every: int = 10
    val_every: int = 100
    ckpt_every: int = 100
    keep: int = 2

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DchagError(f"unknown task {self.task!r}", fix=f"choose one of {TASKS}")
        if self.precision not in PRECISIONS:
            raise DchagError(f"--precision {self.precision!r}", fix=f"choose one of {PRECISIONS}")
        if self.gpus < 1:
            raise DchagError(f"--gpus {self.gpus}: need at least 1")
        if self.gpus % self.tp_size:
            raise DchagError(f"--gpus {self.gpus} is not divisible by --tp {self.tp_size}",
                             fix="choose --tp dividing --gpus (dp = gpus / tp)")
        if self.batch_size % self.dp_size:
            raise DchagError(f"--batch-size {self.batch_size} is not divisible by the "
                             f"{self.dp_size} data-parallel ranks",
                             fix="choose a multiple of gpus / tp")
        for name in ("steps", "batch_size", "log_every", "val_every", "ckpt_every", "keep"):
            if getattr(self, name) < 1:
                raise DchagError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise DchagError(f"--mask-ratio {self.mask_ratio} must be in [0, 1)")
        if not self.leads or min(self.leads) <= 0:
            raise DchagError("--lead needs at least one positive lead time")

    @property
    def tp_size(self) -> int:
        return self.tp or self.gpus

    @property
    def dp_size(self) -> int:
        return self.gpus // self.tp_size

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.steps // 20)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DchagError(f"unknown setting(s) {', '.join(unknown)}", path=source,
                             fix="see `dchag pretrain --help` for the settings")
        return cls(**d)


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML or YAML file, keys spelled as the flags (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise DchagError("no such config file", path=path)
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise DchagError("config files must end in .toml, .yaml or .yml", path=path)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise DchagError(f"cannot parse: {str(exc).splitlines()[0]}", path=path) from exc
    if not isinstance(data, dict):
        raise DchagError("expected a table of settings", path=path)
    out = {k.replace("-", "_"): v for k, v in data.items()}
    if "leads" in out:
        out["leads"] = parse_leads([str(v) for v in _as_list(out["leads"])])
    return out


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


_LEAD = re.compile(r"^(\d+(?:\.\d+)?)\s*([hdw]?)$")
_HOURS = {"h": 1, "": 1, "d": 24, "w": 168}


def parse_lead(text: str) -> int:
    """`6h`, `3d`, `2w` or plain hours → hours."""
    m = _LEAD.match(text.strip().lower())
    if not m:
        raise DchagError(f"lead {text!r} is not a duration", fix="write e.g. 6h, 3d or 2w")
    hours = float(m.group(1)) * _HOURS[m.group(2)]
    if hours <= 0 or hours != int(hours):
        raise DchagError(f"lead {text!r} must be a positive whole number of hours")
    return int(hours)


def parse_leads(items: list[str]) -> list[int]:
    """Leads from repeated flags and/or comma lists, sorted and without repeats."""
    leads = {parse_lead(part) for item in items for part in item.split(",") if part.strip()}
    return sorted(leads)


def format_lead(hours: int) -> str:
    if hours % 168 == 0:
        return f"{hours // 168}w"
    if hours % 24 == 0:
        return f"{hours // 24}d"
    return f"{hours}h"


def save_config(cfg: TrainConfig, run: Path) -> None:
    tmp = run / "config.json.tmp"
    tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
    tmp.replace(run / "config.json")


def load_run_config(run: Path) -> TrainConfig:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise DchagError("not a dchag run (no config.json)", path=run,
                         fix="point at a folder written by `dchag pretrain` or `dchag train`")
    return TrainConfig.from_dict(json.loads(path.read_text()), source=str(path))


def check_same_model(a: TrainConfig, b: TrainConfig, what: str, path: Path) -> None:
    """Refuse a checkpoint whose model differs from the one being built."""
    diffs = [f"{n}: {getattr(b, n)!r} ≠ {getattr(a, n)!r}" for n in MODEL_FIELDS
             if getattr(a, n) != getattr(b, n)]
    if diffs:
        raise DchagError(f"{what} was made with another model ({'; '.join(diffs)})",
                         path=path, fix="use the same settings, or start a new run with --out")
