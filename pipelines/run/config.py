"""The resolved configuration of a training run.

Precedence, lowest first: the defaults below, a `--config` file (TOML or YAML, parsed with
safe loaders, never executed), the run being resumed, then the flags given on the command
line. The resolved config is saved in the run directory; resuming or fine-tuning checks
that the model it describes matches the checkpoint.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.data.times import parse_leads
from pipelines.errors import DchagError
from pipelines.fsops import write_json
from pipelines.limits import MAX_STEPS, check_at_most

TASKS = ("mae", "forecast")
PRECISIONS = ("auto", "bf16", "fp32")
AGGREGATIONS = ("head-split", "replicated")
CHANNEL_IMPLS = ("fused", "folded", "direct")
TARGETS = ("tendency", "state")
AUGMENTS = ("auto", "dihedral", "none")
FILLS = ("biharmonic", "none")  # the MAE's first guess: pipelines.model.fill
LOGGERS = ("none", "tensorboard")  # pipelines.train.trackers.TRACKERS, without importing it
# Fields that define the model: a checkpoint only loads into a run that agrees on these.
MODEL_FIELDS = ("task", "preset", "variant", "tree", "groups", "patch", "crop", "channels",
                "out_channels", "target", "forcings", "fill")
# What a run saved before a setting existed meant: runs older than tendency targets and
# forcings predicted state-normalised residuals from the state alone.
LEGACY = {"target": "state", "forcings": False, "augment": "none", "fill": "none"}


TUNES = ("all", "channels", "new-channels")


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
    ac_channels: bool = False  # recompute the channel stage in the backward pass
    compile: bool = False  # torch.compile each transformer block
    aggregation: str = "head-split"  # the all-input aggregation over TP: or "replicated"
    channel_impl: str = "fused"  # the channel stage: or "folded", "direct"
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
    # training images under a random flip/transpose: "auto" (hyperspectral, not weather)
    augment: str = "auto"
    norm_pix_loss: bool = False
    fill: str = "biharmonic"  # MAE: the decoder corrects this inpainting, or "none"
    leads: list[int] = field(default_factory=lambda: [6, 24, 72, 168])  # hours
    init: str | None = None  # start from this run: a pretrained encoder, or a whole model
    tune: str = "all"  # with --init: every weight, "channels" (MAE) or "new-channels"
    new_channels: list[str] | None = None  # channels (variables, bands) added to the --init run
    target: str = "tendency"  # forecast: "tendency" (σ_lead-scaled change) or "state"
    forcings: bool = True  # forecast: clock and insolation fields as extra inputs
    rollout_steps: int = 1  # forecast: unroll the model's own predictions this many steps
    channel_dropout: float = 0.0  # drop each channel, and each group, with this probability
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # weather: the latest share of the record, held out
    # weather: named periods instead of the fractions, e.g. 1979:2015, 2016, 2017:2018
    train_period: str | None = None
    val_period: str | None = None
    test_period: str | None = None
    val_batches: int = 4
    # bookkeeping
    workers: int = 2
    log_every: int = 10
    logger: str = "none"  # a tracker beside metrics.jsonl: "tensorboard"
    val_every: int = 100
    ckpt_every: int = 100
    keep: int = 2

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DchagError(f"unknown task {self.task!r}", fix=f"choose one of {TASKS}")
        for name, value, choices in (("precision", self.precision, PRECISIONS),
                                     ("aggregation", self.aggregation, AGGREGATIONS),
                                     ("channel-impl", self.channel_impl, CHANNEL_IMPLS),
                                     ("logger", self.logger, LOGGERS),
                                     ("target", self.target, TARGETS),
                                     ("augment", self.augment, AUGMENTS),
                                     ("fill", self.fill, FILLS)):
            if value not in choices:
                raise DchagError(f"--{name} {value!r}", fix=f"choose one of {', '.join(choices)}")
        if self.gpus < 1:
            raise DchagError(f"--gpus {self.gpus}: need at least 1")
        if self.gpus % self.tp_size:
            raise DchagError(f"--gpus {self.gpus} is not divisible by --tp {self.tp_size}",
                             fix="choose --tp dividing --gpus (dp = gpus / tp)")
        if self.batch_size % self.dp_size:
            raise DchagError(f"--batch-size {self.batch_size} is not divisible by the "
                             f"{self.dp_size} data-parallel ranks",
                             fix="choose a multiple of gpus / tp")
        for name in ("steps", "batch_size", "log_every", "val_every", "ckpt_every", "keep",
                     "patch", "val_batches", "rollout_steps"):
            if getattr(self, name) < 1:
                raise DchagError(f"--{_flag(name)} must be at least 1")
        for name in ("tp", "groups", "stop_at"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise DchagError(f"--{_flag(name)} must be at least 1")
        check_at_most(self.steps, MAX_STEPS, "--steps", "about 30 years at a step a second")
        for name in ("min_lr", "weight_decay", "clip", "workers", "warmup", "seed"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise DchagError(f"--{_flag(name)} must not be negative")
        if not self.lr > 0 or not self.timeout_min > 0:
            raise DchagError("--lr and --timeout-min must be positive")
        if not 0.0 <= self.channel_dropout < 1.0:
            raise DchagError(f"--channel-dropout {self.channel_dropout} must be in [0, 1)",
                             fix="e.g. 0.1: each channel, and each group, missing a tenth "
                                 "of the steps")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise DchagError(f"--mask-ratio {self.mask_ratio} must be in [0, 1)")
        if self.norm_pix_loss and self.fill != "none":
            raise DchagError("--norm-pix-loss targets per-patch normalised pixels, which an "
                             "inpainted first guess does not predict",
                             fix="pass --fill none with --norm-pix-loss")
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.test_fraction < 1.0 or \
                self.val_fraction + self.test_fraction >= 1.0:
            raise DchagError(f"--val-fraction {self.val_fraction} and --test-fraction "
                             f"{self.test_fraction} must be in [0, 1) and leave some training")
        if self.train_period is None and (self.val_period or self.test_period):
            raise DchagError("--val-period and --test-period need --train-period",
                             fix="name all three, e.g. --train-period 1979:2015 "
                                 "--val-period 2016 --test-period 2017:2018")
        for name in ("train_period", "val_period", "test_period"):
            if getattr(self, name) is not None:
                from pipelines.data.times import period_hours

                period_hours(getattr(self, name), f"--{_flag(name)}")  # fails here, first
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise DchagError(f"--crop {self.crop} must be HEIGHTxWIDTH of at least 1 pixel")
        if not self.leads or min(self.leads) <= 0:
            raise DchagError("--lead needs at least one positive lead time")
        if self.tune not in TUNES:
            raise DchagError(f"--tune {self.tune!r}", fix=f"choose one of {', '.join(TUNES)}")
        if self.tune != "all" and self.init is None:
            raise DchagError(f"--tune {self.tune} trains part of a pretrained model",
                             fix="name the pretrained run with --init RUN")
        if self.tune == "channels" and self.task != "mae":
            raise DchagError("--tune channels fine-tunes a pretrained MAE's bands",
                             fix="extend a forecaster with --new-channels (--tune "
                             "new-channels), or pass --tune all")
        if self.tune == "channels" and self.new_channels:
            raise DchagError("--tune channels with --new-channels",
                             fix="pass --tune new-channels (only the new bands train) or all")
        if self.tune == "new-channels" and not self.new_channels:
            raise DchagError("--tune new-channels trains channels added with --new-channels",
                             fix="name them with --new-channels, or pass --tune all")

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

    @property
    def uses_forcings(self) -> bool:
        return self.task == "forecast" and self.forcings

    @classmethod
    def from_saved(cls, d: dict[str, Any], source: str) -> TrainConfig:
        """A config saved by a run (or a model file), whatever version wrote it."""
        return cls.from_dict({**LEGACY, **d}, source=source)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Settings of any origin (flags, a config file, a saved run) in one syntax: lists
        may be given as lists or comma strings, leads as `6h,1d` or hours."""
        return cls(**coerce_settings(d, source))


def coerce_settings(d: dict[str, Any], source: str) -> dict[str, Any]:
    """Check names and types of settings (keys spelled like the flags, dashes or
    underscores; `lead` or `leads`), naming `source` in any error."""
    d = {str(k).replace("-", "_"): v for k, v in d.items()}
    if "lead" in d:  # the flag's name works in files too
        d["leads"] = d.pop("lead")
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise DchagError(f"unknown setting(s) {', '.join(unknown)}", path=source,
                         fix="see `dchag pretrain --help` for the settings")
    return {k: _coerce(k, v, str(known[k].type), source) for k, v in d.items()}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _coerce(name: str, value: Any, annotation: str, source: str) -> Any:
    """Check one setting against its declared type; lists accept comma strings."""
    kind = annotation.replace(" ", "")
    optional = kind.endswith("|None")
    kind = kind.removesuffix("|None")

    def bad(expected: str) -> DchagError:
        return DchagError(f"setting {name} = {value!r} is not {expected}", path=source,
                          fix=f"write it as on the command line: --{_flag(name)} …")

    if value is None:
        if optional:
            return None
        raise bad("given")
    if name == "leads":
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           for v in value):
            return sorted(set(value))
        return parse_leads([str(v) for v in items])
    if name == "crop" and isinstance(value, str):
        return list(_parse_hw(value))
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise bad("a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad("text")
        return value
    if kind.startswith("list["):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise bad("a list")
        if kind == "list[str]":
            if not all(isinstance(v, str) for v in items):
                raise bad("a list of names")
            return [v.strip() for v in items if v.strip()]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise bad("a list of whole numbers")
        return list(items)
    return value


def _parse_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise DchagError(f"--crop {text!r} is not HEIGHTxWIDTH, e.g. 192x384") from exc
    return h, w


MAX_CONFIG_BYTES = 2**20  # a page of settings is a few hundred bytes


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML or YAML file, keys spelled as the flags (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise DchagError("no such config file", path=path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise DchagError(f"{path.stat().st_size:,} bytes: larger than a config file can "
                         f"be ({MAX_CONFIG_BYTES:,})", path=path,
                         fix="pass the settings file, not a data file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DchagError(f"not UTF-8 text (byte {exc.start})", path=path,
                         fix="save the config file as UTF-8") from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise DchagError("config files must end in .toml, .yaml or .yml", path=path)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise DchagError(f"cannot parse: {str(exc).splitlines()[0]}", path=path) from exc
    except RecursionError:
        raise DchagError("nested too deeply to be a config file (settings are flat: "
                         "`steps = 300`, `lead = [\"6h\", \"1d\"]`)", path=path,
                         fix="write one setting per line") from None
    if not isinstance(data, dict):
        raise DchagError("expected a table of settings", path=path)
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def save_config(cfg: TrainConfig, run: Path) -> None:
    write_json(run / "config.json", cfg.to_dict())


def load_run_config(run: Path) -> TrainConfig:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise DchagError("not a dchag run (no config.json)", path=run,
                         fix="point at a folder written by `dchag pretrain` or `dchag train`")
    try:
        saved = json.loads(path.read_text())
    except ValueError as exc:
        raise DchagError("config.json is not valid JSON", path=path,
                         fix="the run folder is damaged") from exc
    if not isinstance(saved, dict):
        raise DchagError("config.json holds no settings", path=path)
    return TrainConfig.from_saved(saved, source=str(path))


def check_same_model(a: TrainConfig, b: TrainConfig, what: str, path: Path) -> None:
    """Refuse a checkpoint whose model differs from the one being built."""
    diffs = [f"{n}: {getattr(b, n)!r} ≠ {getattr(a, n)!r}" for n in MODEL_FIELDS
             if getattr(a, n) != getattr(b, n)]
    if diffs:
        raise DchagError(f"{what} was made with another model ({'; '.join(diffs)})",
                         path=path, fix="use the same settings, or start a new run with --out")
