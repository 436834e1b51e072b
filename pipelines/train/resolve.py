"""Resolve a run's configuration from defaults, a config file, a resumed run and flags,
and check it before any worker starts (a bad flag fails in a second, not after launch)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipelines.data.sensor_bands import store_bands
from pipelines.data.times import format_lead
from pipelines.errors import DchagError
from pipelines.guard import check_no_overlap, check_replaceable, mark_folder
from pipelines.model.config import ModelConfig
from pipelines.model_header import is_model_file
from pipelines.notes import note
from pipelines.parallel.tensor_parallel import check_tp, splittable_tp, tp_problem
from pipelines.run.channel_match import channel_measures
from pipelines.run.checkpoint import checkpoint_step, intact_checkpoint
from pipelines.run.config import (
    TrainConfig,
    check_same_model,
    coerce_settings,
    load_run_config,
    read_config_file,
    save_config,
)
from pipelines.run.model_file import check_whole_file, open_model_file, saved_info
from pipelines.run.tendency import table_from_json, table_to_json, tendency_std
from pipelines.train.build import model_config
from pipelines.train.data import Artifact, describe_artifact, split_samples
from pipelines.train.distributed import check_devices, launcher_world
from pipelines.train.extend import extension_settings, pretrained_scales
from pipelines.train.sensor_data import sensor_record
from pipelines.train.spectral_prior import training_basis

# Model fields the encoder's weights depend on (what `--init` must agree on).
RUN_HINT = "--resume it, pass --overwrite, or choose another --out"
ENCODER_FIELDS = ("channels", "img_size", "patch", "embed_dim", "depth", "heads", "mlp_ratio",
                  "variant", "tree", "tree_fanout", "groups")


def resolve(task: str, flags: dict[str, Any], config_file: Path | None,
            resume: Path | None) -> TrainConfig:
    settings: dict[str, Any] = {}
    if resume is not None:
        saved = load_run_config(resume)
        settings.update(saved.to_dict(), stop_at=None)
    if config_file is not None:
        settings.update(coerce_settings(read_config_file(config_file), str(config_file)))
    if resume is not None and flags.get("gpus") is not None and flags.get("tp") is None:
        settings.pop("tp", None)  # a new --gpus: choose the split afresh
    settings.update({k: v for k, v in flags.items() if v is not None})
    settings["task"] = task
    world = launcher_world()
    if world is not None:  # torchrun/srun decide the job's size
        if flags.get("gpus") is not None and flags["gpus"] != world:
            raise DchagError(f"--gpus {flags['gpus']} but the launcher started {world} ranks "
                             "(WORLD_SIZE)", fix=f"pass --gpus {world} or leave it out")
        settings["gpus"] = world
    if resume is not None:
        settings["out"] = str(resume)
    settings.setdefault("out", DEFAULT_RUNS[task])
    if not settings.get("data"):
        settings["data"] = default_data(task)
    if task == "forecast" and "forcings" not in settings and settings.get("init"):
        settings["forcings"] = _forcings_for_init(Path(settings["init"]))
    # Inputs by absolute path: config.json is read again by --resume, from any folder.
    for key in ("data", "init"):
        if settings.get(key):
            settings[key] = str(Path(settings[key]).expanduser().absolute())
    if settings.get("new_channels") and resume is None:
        settings = extension_settings(settings)
    cfg = TrainConfig.from_dict(settings)
    if resume is not None:
        check_same_model(cfg, saved, "the run being resumed", resume)
    return cfg


DEFAULT_RUNS = {"mae": "runs/pretrain", "forecast": "runs/forecast"}
DEFAULT_DATA = {"mae": ("appl.zarr", "era5.zarr"), "forecast": ("era5.zarr",)}


def default_data(task: str) -> str:
    """Where the prep stages put their output by default, if it is here."""
    for name in DEFAULT_DATA[task]:
        if Path(name).is_dir():
            note(f"training on {name} (the default output of `dchag prep "
                 f"{name.removesuffix('.zarr')}`); --data chooses another")
            return name
    preps = " or ".join(f"`dchag prep {n.removesuffix('.zarr')}`" for n in DEFAULT_DATA[task])
    raise DchagError("no training data given, and no "
                     f"{' or '.join(DEFAULT_DATA[task])} here",
                     fix=f"pass --data, or run {preps} first (it writes one here)")


def choose_tp(cfg: TrainConfig, mcfg: ModelConfig, tp_given: bool) -> TrainConfig:
    """--tp as given (checked), or, when left out, the largest size the preset splits over
    (all ranks if it can): `dchag pretrain --gpus 8` works with any preset."""
    if tp_given or tp_problem(mcfg, cfg.tp_size) is None:
        check_tp(mcfg, cfg.tp_size, cfg.preset)
        return cfg
    sizes = [t for t in splittable_tp(mcfg, cfg.gpus)
             if (cfg.batch_size % (cfg.gpus // t)) == 0]
    if not sizes:
        check_tp(mcfg, cfg.tp_size, cfg.preset)
    tp = max(sizes)
    note(f"preset {cfg.preset!r}: {tp_problem(mcfg, cfg.gpus)}; using --tp {tp} (dp "
         f"{cfg.gpus // tp}) — pass --tp to choose, or a larger --preset")
    return cfg.with_(tp=tp)


def run_inputs(cfg: TrainConfig, config_file: Path | None = None) -> list[Path]:
    """What a training run reads, which its run folder must not overlap."""
    inputs = [Path(cfg.data)]
    if cfg.init is not None:
        inputs += [Path(cfg.init)] if is_model_file(Path(cfg.init)) else \
            [Path(cfg.init) / "checkpoints", Path(cfg.init) / "model.json"]
    if config_file is not None:
        inputs.append(Path(config_file))
    return inputs


def prepare(cfg: TrainConfig, *, resume: bool, overwrite: bool,
            config_file: Path | None = None, tp_given: bool = True,
            owns_run: bool = True) -> tuple[TrainConfig, Artifact, ModelConfig]:
    """Validate everything a worker will need; returns the final config (with the chosen
    --tp), the artifact and the model config. Changes nothing on disk (`--dry-run` stops
    after this)."""
    check_devices(cfg.gpus)
    art = describe_artifact(Path(cfg.data), cfg)
    if not split_samples(art, cfg, "train")[0]:
        raise DchagError("no training samples", path=cfg.data,
                         fix="use more data, shorter --lead or a smaller --val-fraction")
    note_validation_leads(art, cfg)
    if art.sensor is not None:
        note(f"{Path(cfg.data).name}'s {len(art.channel_index)} bands are not the pretrained "
             f"run's {len(art.channel_names)}: each batch is read through their spectral "
             f"response into the run's bands (lifted by {art.sensor.method})")
    if cfg.tune == "channels":
        note("--tune channels: only each band's patch embedding and decoder output train; "
             "the backbone stays as pretrained")
    mcfg = model_config(cfg, art)
    cfg = choose_tp(cfg, mcfg, tp_given)
    if cfg.new_channels:
        mcfg = model_config(cfg, art)  # the new channels' groups follow the chosen --tp
        check_intact_init(Path(cfg.init or ""))
    elif cfg.init is not None:
        check_init(Path(cfg.init), mcfg, art, cfg.target)
    run = Path(cfg.out)
    if resume:
        check_no_overlap(run, run_inputs(cfg, config_file))
        check_resume_data(run, art)
        ckpt = intact_checkpoint(run)[0]  # a tampered one is refused before anything starts
        if ckpt is not None and checkpoint_step(ckpt) > cfg.steps:
            raise DchagError(f"--steps {cfg.steps} is below step {checkpoint_step(ckpt)}, "
                             "which the run has already reached", path=run,
                             fix=f"pass --steps above {checkpoint_step(ckpt)} to train on, "
                             "or evaluate the run as it is")
    elif owns_run:  # under torchrun only global rank 0 creates it (the others may see it)
        check_creatable(run)
        check_replaceable(run, ("run",), run_inputs(cfg, config_file), overwrite, RUN_HINT)
    return cfg, art, mcfg


def check_creatable(run: Path) -> None:
    """The run folder (and any missing parents) can be made: its nearest existing
    ancestor is a writable folder."""
    ancestor = Path(run).resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise DchagError("cannot create the run folder here", path=ancestor,
                         fix="choose another --out")


def note_validation_leads(art: Artifact, cfg: TrainConfig) -> None:
    """Say so when the validation window reaches only some leads: its loss then is not
    comparable with the training loss (short leads are easier)."""
    if cfg.task != "forecast" or cfg.val_fraction == 0:
        return
    _, reach = split_samples(art, cfg, "val")
    covered = sorted({lead for pairs in reach.values() for lead, _ in pairs})
    if covered and covered != sorted(cfg.leads):
        note(f"validation times ({cfg.val_fraction:.0%} of the record) reach only lead "
             f"{', '.join(map(format_lead, covered))} of "
             f"{', '.join(map(format_lead, cfg.leads))}: the validation loss covers those "
             "alone and is not comparable with the training loss")


def check_resume_data(run: Path, art: Artifact) -> None:
    """A resumed run continues on data with its own channels and grid."""
    path = run / "model.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DchagError("cannot read model.json", path=path,
                         fix="point --resume at a folder written by `dchag pretrain` or "
                         "`dchag train`") from exc
    if saved.get("channel_names") != art.channel_names:
        raise DchagError("the data's channels differ from the run's", path=art.path,
                         fix="resume on the artifact the run was trained on")
    grid = zarr.open_group(str(art.path), mode="r").attrs.get("grid")
    if saved.get("grid") is not None and grid != saved["grid"]:
        raise DchagError(f"the data's grid {grid} differs from the run's {saved['grid']}",
                         path=art.path, fix="resume on the artifact the run was trained on")


def check_intact_init(init: Path) -> None:
    """`--init` holds weights to start from: a whole model file or an intact checkpoint."""
    if is_model_file(init):
        check_whole_file(init)
    elif intact_checkpoint(init)[0] is None:
        raise DchagError("no intact checkpoint to initialise from", path=init,
                         fix="point --init at a finished `dchag pretrain` run or a model "
                         "file of `dchag export model`")


def check_init(init: Path, mcfg: ModelConfig, art: Artifact, target: str) -> None:
    """`--init` (a pretraining run, or its model file) must hold this encoder."""
    check_intact_init(init)
    saved = saved_info(init)
    if init_task(init) == "forecast":  # fine-tuning a forecaster (rollout training)
        _check_whole_forecaster(init, saved, mcfg, art, target)
        return
    diffs = [f"{k}: {saved['model'][k]!r} ≠ {mcfg.to_dict()[k]!r}" for k in ENCODER_FIELDS
             if saved["model"][k] != mcfg.to_dict()[k]]
    if saved["channel_names"] != art.channel_names:
        diffs.append("channel names")
    if diffs:
        forcing = " (a forecaster adds forcing inputs: pass --no-forcings to fine-tune an " \
            "encoder pretrained without them)" if art.forcings else ""
        raise DchagError(f"the pretrained encoder differs ({'; '.join(diffs)}){forcing}",
                         path=init, fix="fine-tune with the pretraining run's --preset, "
                         "--variant, --tree, --groups, --patch and channels")


def _forcings_for_init(init: Path) -> bool:
    """Forcings are on by default, but an encoder pretrained without them has no place
    for them: fine-tuning one leaves them off unless --forcings says otherwise."""
    try:
        if init_task(init) == "forecast":
            return bool(saved_info(init).get("forcings"))
    except DchagError:
        return True  # check_init names what is wrong with --init
    note("--init is an encoder pretrained without forcings: training without them "
         "(--forcings needs an encoder pretrained with as many input channels)")
    return False


def tendency_table(art: Artifact, cfg: TrainConfig) -> dict[int, list[float]] | None:
    """σ per lead for a new run (`tendency.py`): a forecaster fine-tuned from another keeps
    the table its weights were trained with; otherwise it is measured on this run's
    training period. Done once, by whoever makes the run folder: the ranks and every later
    command read it back from model.json (`saved_tendency`)."""
    if cfg.task != "forecast" or cfg.target != "tendency":
        return None
    if cfg.new_channels:
        return pretrained_scales(cfg, _measured_scales(art, cfg),
                                 len(art.out_index) - len(cfg.new_channels))
    if cfg.init and init_task(Path(cfg.init)) == "forecast":
        table = table_from_json(saved_info(Path(cfg.init)).get("tendency_std")) or {}
        missing = sorted(set(cfg.leads) - set(table))
        if missing:
            raise DchagError(f"the forecaster to fine-tune has no tendency scale for lead(s) "
                             f"{', '.join(map(format_lead, missing))}", path=cfg.init,
                             fix="fine-tune with --lead among its trained leads")
        return {lead: table[lead] for lead in cfg.leads}
    return _measured_scales(art, cfg)


def _measured_scales(art: Artifact, cfg: TrainConfig) -> dict[int, list[float]]:
    group = zarr.open_group(str(art.path), mode="r")
    times = np.asarray(group["time"][:], np.int64)
    measured = tendency_std(group, times, art.periods.contains("train", times),
                            [art.channel_index[i] for i in art.out_index], cfg.leads,
                            art.path)
    return {lead: v.tolist() for lead, v in measured.items()}


def saved_tendency(run: Path) -> dict[int, list[float]] | None:
    """The σ table a run was made with (None: state targets, or an older run)."""
    return table_from_json(saved_info(Path(run)).get("tendency_std"))


def init_task(init: Path) -> str:
    """What `--init` holds: a pretraining ("mae") or a forecasting run (or model file)."""
    if is_model_file(init):
        return str(open_model_file(init).config.get("task", "mae"))
    return load_run_config(init).task


def _check_whole_forecaster(init: Path, saved: dict, mcfg: ModelConfig, art: Artifact,
                            target: str) -> None:
    """A forecaster fine-tuned from another takes all of it: same model, targets, scales."""
    diffs = [f"{k}: {saved['model'].get(k)!r} ≠ {v!r}" for k, v in mcfg.to_dict().items()
             if saved["model"].get(k) != v]
    for key, mine in (("channel_names", art.channel_names),
                      ("out_channels", [art.channel_names[i] for i in art.out_index]),
                      ("forcings", list(art.forcings))):
        if list(saved.get(key) or []) != mine:
            diffs.append(key.replace("_", " "))
    if (saved.get("target") or "state") != target:
        diffs.append(f"target {saved.get('target') or 'state'}")
    if diffs:
        raise DchagError(f"the forecaster to fine-tune differs ({'; '.join(diffs)})",
                         path=init, fix="fine-tune with its --preset, --variant, --groups, "
                         "--patch, channels, --out-channels, --target and --forcings")


def create_run(cfg: TrainConfig, art: Artifact, mcfg: ModelConfig, overwrite: bool,
               config_file: Path | None = None) -> Path:
    """Make the run folder (global rank 0 only, with the run's lock held)."""
    run = Path(cfg.out)
    check_replaceable(run, ("run",), run_inputs(cfg, config_file), overwrite, RUN_HINT)
    table = tendency_table(art, cfg)  # before the folder exists: a refusal leaves nothing
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    mark_folder(run, "run")
    save_config(cfg, run)
    # What inference needs besides the weights: the training normalisation and grid.
    model = {"model": mcfg.to_dict(), "channel_names": art.channel_names,
             "out_channels": [art.channel_names[i] for i in art.out_index], "kind": art.kind,
             "mean": art.mean.tolist(), "std": art.std.tolist(),
             "periods": art.periods.to_dict() if art.periods else None,
             "data": str(Path(cfg.data).resolve()),
             "target": cfg.target if cfg.task == "forecast" else None,
             "tendency_std": table_to_json(table),
             "forcings": list(art.forcings),
             "grid": zarr.open_group(str(art.path), mode="r").attrs.get("grid"),
             **_bands_of(art, cfg)}
    (run / "model.json").write_text(json.dumps(model, indent=2))
    return run


def _bands_of(art: Artifact, cfg: TrainConfig) -> dict:
    """The run's spectral prior and what its channels measure: its own, or (a run on
    another sensor's cubes) the pretrained model's, with the sensor it is trained through."""
    if art.sensor is None:
        return {"spectral_basis": training_basis(art, cfg), "channel_measures": _measures(art)}
    init = saved_info(Path(cfg.init or ""))
    return {"spectral_basis": init.get("spectral_basis"),
            "channel_measures": init.get("channel_measures"), "sensor": sensor_record(art)}


def _measures(art: Artifact) -> dict:
    """What each of the run's channels measures (`run.channel_match`), from the store."""
    if art.kind != "appl":
        return channel_measures(art.kind, art.channel_names)
    nm, fwhm = store_bands(zarr.open_group(str(art.path), mode="r"))
    return channel_measures("appl", art.channel_names, nm[art.channel_index].tolist(),
                            fwhm[art.channel_index].tolist())
