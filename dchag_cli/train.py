"""`dchag pretrain` and `dchag train forecast`: the training stages.

Both commands share one option set (declared once below); each flag can also come from a
`--config` TOML/YAML file or from the run being resumed.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dchag_cli.console import (
    err,
    human_bytes,
    key_value_table,
    out,
    user_errors,
)
from pipelines.data.times import format_lead, parse_leads
from pipelines.model.config import PRESETS, VARIANTS
from pipelines.run.config import TrainConfig

if TYPE_CHECKING:
    from pipelines.train.loop import TrainResult

app = typer.Typer(help="Train models on prepared artifacts.", no_args_is_help=True)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _opt(kind: Any, help_text: str, *flags: str, shown: str | None = None) -> tuple[Any, Any]:
    """(type, default) of an option defaulting to None — 'not given: keep the config file's
    or the resumed run's value' — whose help still shows the real default."""
    return (kind, typer.Option(None, *flags, help=help_text, show_default=shown or False))


def _dflt(name: str) -> str:
    value = _DEFAULTS[name]
    return str(value) if not isinstance(value, float) else f"{value:g}"


def _where(data_help: str, data_default: str, run_default: str) -> dict[str, tuple[Any, Any]]:
    """--data and --out, with each command's own defaults."""
    return {
        "data": _opt(Path, data_help, shown=data_default),
        "out": _opt(Path, "The run folder (checkpoints, metrics.zarr, loss.png); missing "
                    "parent folders are created.", "--out", "-o", shown=run_default)}


MAE_WHERE = _where("The artifact to pretrain on: appl.zarr or era5.zarr.",
                   "appl.zarr, else era5.zarr: where `dchag prep` writes them",
                   "runs/pretrain")
FORECAST_WHERE = _where("The era5.zarr to train on.",
                        "era5.zarr: where `dchag prep era5` writes it", "runs/forecast")
COMMON: dict[str, tuple[Any, Any]] = {
    "config": _opt(Path, "Settings from a TOML or YAML file: keys and values as the flags "
                   "(channels = \"z_500,t2m\" or a list; lead = \"6h,1d\")."),
    "resume": _opt(Path, "Continue this run from its last intact checkpoint (any "
                   "--gpus/--tp)."),
    "overwrite": (bool, typer.Option(False, "--overwrite", help="Replace an existing run "
                                     "folder (only one dchag made).")),
    "dry_run": (bool, typer.Option(False, "--dry-run", help="Print the resolved config, "
                                   "mesh, parameters and planned memory; change nothing.")),
    "memory_check": (bool, typer.Option(True, "--memory-check/--no-memory-check",
                                        help="Refuse a run whose ranks would not fit the "
                                        "host's (CPU) or the GPU's memory, before they "
                                        "start.")),
    "gpus": _opt(int, "Ranks to start (GPUs; gloo processes on a CPU). Under torchrun/srun "
                 "the job's WORLD_SIZE.", shown=_dflt("gpus")),
    "tp": _opt(int, "Tensor-parallel ranks per model replica.",
               shown="--gpus, or the largest size the preset splits over"),
    "preset": _opt(str, f"Model size: {', '.join(PRESETS)}.", shown=_dflt("preset")),
    "variant": _opt(str, f"Channel aggregation: {', '.join(VARIANTS)} (baseline = pure TP).",
                    shown=_dflt("variant")),
    "tree": _opt(int, "Extra aggregation levels per channel group: 0, 1, 2.",
                 shown=_dflt("tree")),
    "groups": _opt(int, "Channel groups G, a multiple of --tp.", shown="8 or fewer"),
    "patch": _opt(int, "Patch size in pixels.", shown=_dflt("patch")),
    "channels": _opt(str, "Channel subset: names (z_500,t2m) or band ranges (450-700).",
                     shown="all"),
    "steps": _opt(int, "Optimizer steps.", shown=_dflt("steps")),
    "stop_at": _opt(int, "Checkpoint and exit at this step; --resume continues (for job "
                    "time limits)."),
    "batch_size": _opt(int, "Global batch (split over data-parallel ranks).",
                       shown=_dflt("batch_size")),
    "lr": _opt(float, "Peak learning rate (AdamW).", shown=_dflt("lr")),
    "min_lr": _opt(float, "Learning rate at the end of the cosine decay.",
                   shown=_dflt("min_lr")),
    "warmup": _opt(int, "Warm-up steps before cosine decay.", shown="5% of --steps"),
    "weight_decay": _opt(float, "AdamW weight decay.", shown=_dflt("weight_decay")),
    "clip": _opt(float, "Clip the global gradient norm (0: off).", shown=_dflt("clip")),
    "seed": _opt(int, "Seed for weights, data order, masks and leads.", shown=_dflt("seed")),
    "ac": _opt(bool, "Activation checkpointing per transformer block.", "--ac/--no-ac",
               shown="no-ac"),
    "ac_channels": _opt(bool, "Recompute the channel stage (tokens, aggregation) in the "
                        "backward pass instead of keeping it.", "--ac-channels/--no-ac-channels",
                        shown="no-ac-channels"),
    "compile": _opt(bool, "torch.compile each transformer block (same checkpoints; the "
                    "first steps pay the compilation).", "--compile/--no-compile",
                    shown="no-compile"),
    "aggregation": _opt(str, "The aggregation over all ranks' inputs under tensor "
                        "parallelism: head-split (heads over TP ranks) or replicated.",
                        shown=_dflt("aggregation")),
    "channel_impl": _opt(str, "fused (no per-channel keys/values; D-CHAG-L as one matmul), "
                         "folded (no channel tokens either) or direct (the reference). Same "
                         "function, same checkpoints.", shown=_dflt("channel_impl")),
    "precision": _opt(str, "auto (bf16 on GPU, fp32 on CPU), bf16 or fp32.",
                      shown=_dflt("precision")),
    "workers": _opt(int, "Data-loader processes per rank.", shown=_dflt("workers")),
    "log_every": _opt(int, "Steps between metric records and, when output is not a "
                      "terminal (a batch job), progress lines.", shown=_dflt("log_every")),
    "logger": _opt(str, "Also send metrics.jsonl's records to a tracker: tensorboard "
                   "(event files in RUN/tensorboard; pip install 'dchag\\[tensorboard]'), or "
                   "none.", shown=_dflt("logger")),
    "val_every": _opt(int, "Steps between validation losses.", shown=_dflt("val_every")),
    "ckpt_every": _opt(int, "Steps between checkpoints.", shown=_dflt("ckpt_every")),
    "val_fraction": _opt(float, "Share held out for validation: a period before the test "
                         "period (weather), or plants (hyperspectral).",
                         shown=_dflt("val_fraction")),
    "test_fraction": _opt(float, "Weather: the latest share of the record, held out for "
                          "`dchag eval forecast` (periods are separated by the longest "
                          "lead).", shown=_dflt("test_fraction")),
    "val_batches": _opt(int, "Batches per validation.", shown=_dflt("val_batches")),
    "channel_dropout": _opt(float, "Train with inputs missing: each step drops every "
                            "channel, and every channel group, with this probability (the "
                            "same draw on every rank; validation sees every input).",
                            shown=_dflt("channel_dropout")),
    "train_period": _opt(str, "Weather: the training period by name, e.g. 1979:2015 "
                         "(instead of the fractions; with --val-period, --test-period).",
                         shown="the fractions"),
    "val_period": _opt(str, "Weather: the validation period, e.g. 2016.", shown="none"),
    "test_period": _opt(str, "Weather: the test period `eval forecast` scores, e.g. "
                        "2017:2018.", shown="none"),
    "keep": _opt(int, "Checkpoints to keep.", shown=_dflt("keep")),
    "timeout_min": _opt(float, "Collective timeout in minutes.", shown=_dflt("timeout_min")),
}
MAE_ONLY = {
    "init": _opt(Path, "Fine-tune this pretrained MAE (a run folder or its model file), "
                 "e.g. on another sensor's cubes: a store without the run's bands is read "
                 "through their spectral response, in the run's bands."),
    "tune": _opt(str, "With --init: all (every weight), channels (each band's patch "
                 "embedding and decoder output only; the backbone stays frozen) or, with "
                 "--new-channels, new-channels (only the new bands').",
                 shown="all; new-channels with --new-channels"),
    "new_channels": _opt(str, "Extend the --init MAE by bands outside its range, e.g. "
                         "400-449,851-900 (nm, or band names) of a store that also holds "
                         "the run's bands: they get channel groups and decoder rows of "
                         "their own."),
    "mask_ratio": _opt(float, "Fraction of patches masked.", shown=_dflt("mask_ratio")),
    "norm_pix_loss": _opt(bool, "Reconstruct per-patch normalised pixels.",
                          "--norm-pix-loss/--no-norm-pix-loss", shown="no-norm-pix-loss"),
    "fill": _opt(str, "What the decoder corrects: biharmonic (the inpainting of the hidden "
                 "pixels from the visible ones, so training starts at that baseline) or "
                 "none (the pixels from nothing).", shown=_dflt("fill")),
    "crop": _opt(str, "Random crops HEIGHTxWIDTH (hyperspectral), e.g. 192x384.",
                 shown="whole images"),
    "augment": _opt(str, "Training images under a random symmetry (flips, and transposes "
                    "of square images): dihedral, none, or auto — dihedral for plant cubes, "
                    "none for weather fields (they have a north and an east).",
                    shown=_dflt("augment")),
}
FORECAST_ONLY = {
    "lead": _opt(list[str], "Lead times, e.g. --lead 6h,1d,3d,7d (a random one per "
                 "sample).", shown="6h,1d,3d,7d"),
    "init": _opt(Path, "Start from this pretrained run's encoder, or a whole trained "
                 "forecaster (a run folder or its model file of `dchag export model`).",
                 "--init", "--init-from"),
    "new_channels": _opt(str, "Extend the --init forecaster by these channels, e.g. t2m: "
                         "they get a channel group and an output layer of their own, and "
                         "(--tune new-channels, the default) only those train."),
    "tune": _opt(str, "With --new-channels: new-channels (only the new channels' "
                 "parameters) or all (a full fine-tune).", shown="new-channels"),
    "out_channels": _opt(str, "Channels to predict, or all.",
                         shown="z_500,t_850,t2m,u10,v10 where present"),
    "target": _opt(str, "tendency: predict the change over the lead in units of its own "
                   "spread (per channel and lead, from the training period) — what beats "
                   "persistence at short leads; state: the change in units of the state's "
                   "spread (runs before tendency targets).", shown=_dflt("target")),
    "forcings": _opt(bool, "Add computed inputs known in advance: cos/sin of local solar "
                     "time and of day of year at the valid time, top-of-atmosphere "
                     "insolation at the valid and input times.", "--forcings/--no-forcings",
                     shown="forcings"),
    "rollout_steps": _opt(int, "Unroll the model's own predictions this many steps of each "
                          "lead and average the losses (fine-tune a forecaster with --init "
                          "RUN; needs --out-channels all).", shown=_dflt("rollout_steps")),
}


def train_options(options: dict[str, tuple[Any, Any]]) -> Callable:
    """Give a `**kwargs` command the signature Typer reads its options from."""

    def decorate(fn: Callable) -> Callable:
        fn.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=kind)
            for name, (kind, default) in options.items()])
        return fn

    return decorate


def _check_memory(cfg: Any, art: Any, enforce: bool) -> None:
    """Before any rank starts: refuse what cannot fit (or say it goes ahead unchecked)."""
    import numpy as np
    import torch

    from pipelines.bench.memory_check import check_memory, refuse_if_too_large
    from pipelines.data.zarr_store import open_artifact

    array = "cube" if art.kind == "appl" else "data"
    itemsize = np.dtype(open_artifact(art.path, art.kind)[array].dtype).itemsize
    check = check_memory(cfg, art, itemsize, gpu=torch.cuda.is_available())
    if check.planned:
        err.print(f"memory: {check.per_rank_bytes / 2**30:.2f} GiB per rank (memory planner"
                  f"){f' × {check.ranks_sharing} ranks' if check.ranks_sharing > 1 else ''}"
                  f" of {check.available_bytes / 2**30:.1f} GiB available on {check.where}",
                  soft_wrap=True)
    if enforce:
        refuse_if_too_large(check, cfg)
    elif not check.fits:
        err.print("[yellow]note:[/] --no-memory-check: starting although the memory planner "
                  "says the ranks will not fit", soft_wrap=True)


def _flags(given: dict[str, Any]) -> dict[str, Any]:
    """CLI values → TrainConfig fields (only those given)."""
    flags = {k: v for k, v in given.items()
             if k not in ("config", "resume", "overwrite", "dry_run", "lead", "crop",
                          "memory_check")}
    for name in ("channels", "out_channels", "new_channels"):
        if flags.get(name):
            flags[name] = [c.strip() for c in flags[name].split(",") if c.strip()]
    for name in ("data", "out", "init"):
        if flags.get(name) is not None:
            flags[name] = str(flags[name])
    if given.get("lead"):
        flags["leads"] = parse_leads(given["lead"])
    if given.get("crop"):
        from pipelines.model.config import parse_size

        flags["crop"] = list(parse_size(given["crop"]))
    return flags


@app.command("forecast")
@user_errors
@train_options({**FORECAST_WHERE, **COMMON, **FORECAST_ONLY})
def forecast(**given: Any) -> None:
    """Train a forecaster on [bold]era5.zarr[/]: state at t → output channels at t + lead.

    A random lead from --lead per sample; the network predicts the change over the lead
    in units of that change's spread (--target tendency), from the state and computed
    forcings (clock, season, insolation); latitude-weighted MSE. --init starts from a
    pretrained encoder (`dchag pretrain --data era5.zarr`), or from a whole trained
    forecaster to fine-tune it with --rollout-steps.

    Example: [cyan]dchag train forecast --data era5.zarr --lead 6h,1d --gpus 2 --steps 300[/]
    """
    _run("forecast", given)


@user_errors
@train_options({**MAE_WHERE, **COMMON, **MAE_ONLY})
def pretrain(**given: Any) -> None:
    """MAE pretraining with distributed D-CHAG on [bold]appl.zarr[/] or [bold]era5.zarr[/].

    --gpus N starts N workers (torch's elastic launcher); under torchrun or srun the same
    command joins the job. The (dp, tp) mesh has tp = --tp and dp = gpus / tp; model
    weights are sharded with FSDP over dp. Checkpoints can resume on another --gpus/--tp.

    Example: [cyan]dchag pretrain --data appl.zarr --gpus 8 --variant L --tree 0 --preset base[/]

    Another sensor: [cyan]dchag pretrain --data other.zarr --init runs/pretrain --tune channels
    --out runs/other[/]

    Bands outside the run's range: [cyan]dchag pretrain --data wide.zarr --init runs/pretrain
    --new-channels 400-449,851-900 --out runs/wide[/]
    """
    _run("mae", given)


def _run(task: str, given: dict[str, Any]) -> None:
    # Heavy imports (torch, the distributed engine) only once a command really runs.
    from dchag_cli.train_progress import run_rank
    from pipelines.train.distributed import adopt_slurm_env, is_global_rank_zero, launch
    from pipelines.train.job import train_in_run_folder
    from pipelines.train.resolve import prepare, resolve
    from pipelines.train.trackers import check_tracker

    adopt_slurm_env()
    resume, config_file = given.get("resume"), given.get("config")
    cfg = resolve(task, _flags(given), config_file, resume)
    check_tracker(cfg.logger)
    overwrite = bool(given.get("overwrite"))
    cfg, art, mcfg = prepare(cfg, resume=resume is not None, overwrite=overwrite,
                             config_file=config_file, tp_given=given.get("tp") is not None,
                             owns_run=is_global_rank_zero())
    if given.get("dry_run"):
        _print_plan(cfg, mcfg)
        return
    if not is_global_rank_zero():
        # torchrun/srun: global rank 0 prepares the run folder; this rank waits for it
        # inside `train` (a barrier after joining the process group).
        launch(run_rank, cfg, cfg.gpus)
        return
    _check_memory(cfg, art, enforce=given.get("memory_check", True) is not False)
    result = train_in_run_folder(
        cfg, art, mcfg, run_rank, resuming=resume is not None, overwrite=overwrite,
        config_file=config_file, on_start=lambda: err.print(
            f"training {task}: {len(art.channel_names)} channels, {cfg.preset}, D-CHAG "
            f"{cfg.variant} tree {cfg.tree}, mesh dp {cfg.dp_size} × tp {cfg.tp_size} → "
            f"{cfg.out}"))
    _print_result(cfg, result)


def _print_plan(cfg: TrainConfig, mcfg: Any) -> None:
    import torch

    from pipelines.bench.case import Case
    from pipelines.bench.planner import plan
    from pipelines.model.info import parameter_counts

    counts = parameter_counts(mcfg, cfg.task)
    err.print("planning one training step per rank on fake tensors …")
    case = Case(cfg.preset, mcfg.channels, cfg.variant, cfg.tree, cfg.tp_size, mcfg.img_size,
                cfg.patch, cfg.batch_size // cfg.dp_size, cfg.dp_size, cfg.channel_impl,
                cfg.aggregation, cfg.ac, cfg.ac_channels, cfg.task, mcfg.n_groups,
                mcfg.n_out)
    planned = plan(case, dtype=torch.float32 if cfg.precision == "fp32" else torch.bfloat16)
    settings = cfg.to_dict()
    if cfg.task == "forecast":
        settings["leads"] = ",".join(format_lead(h) for h in cfg.leads)
    out.print(key_value_table("resolved config", [(k, json.dumps(v)) for k, v in
                                                  settings.items()]))
    out.print(key_value_table("plan", [
        ("mesh", f"dp {cfg.dp_size} × tp {cfg.tp_size} ({cfg.gpus} ranks)"),
        ("model", f"{mcfg.channels} channels, {mcfg.img_size[0]}×{mcfg.img_size[1]}, patch "
                  f"{mcfg.patch}, D={mcfg.embed_dim}, depth {mcfg.depth}, G={mcfg.n_groups}"),
        ("parameters", f"{counts['total']:,}"),
        ("memory per rank (planned)", f"{planned['peak_mem_bytes'] / 2**30:.2f} GiB "
         f"(fake-tensor step: {'fp32' if cfg.precision == 'fp32' else 'bf16'} compute, fp32 "
         "master weights and AdamW state)"),
        ("TFLOP per rank and step", f"{planned['flops_per_rank'] / 1e12:.3g}"),
    ]))


def _print_result(cfg: TrainConfig, result: TrainResult) -> None:
    from pipelines.data.zarr_store import store_bytes

    run = Path(result.run)
    rows = [("steps", str(result.steps_done)), ("final train loss", f"{result.final_loss:.5g}")]
    if result.final_val_loss is not None:
        rows.append(("final validation loss", f"{result.final_val_loss:.5g}"))
    ckpts = run / "checkpoints"
    size = store_bytes(ckpts) if ckpts.exists() else 0
    rows += [("run", str(run)), ("metrics", str(run / "metrics.zarr")),
             ("loss curve", str(run / "loss.png")),
             ("checkpoints", f"{ckpts} ({human_bytes(size)})")]
    out.print(key_value_table(f"{cfg.task}: done", rows))

