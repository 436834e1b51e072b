"""The training loop every rank runs: MAE pretraining or forecasting.

Everything a step does is a function of (seed, step) — data, masks, leads — so a run
resumed from a checkpoint, or moved to another (dp, tp) layout, continues the same loss
curve. Rank 0 alone writes metrics and reports progress.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import zarr
from torch import Tensor

from pipelines.data.datasets import Normalizer
from pipelines.errors import DchagError, Interrupted
from pipelines.limits import worker_processes
from pipelines.model_header import is_model_file
from pipelines.notes import note
from pipelines.parallel.gather import all_gather_flat
from pipelines.parallel.tensor_parallel import tp_local_names
from pipelines.provenance import provenance
from pipelines.run.checkpoint import (
    checkpoint_root,
    intact_checkpoint,
    load_checkpoint,
    load_encoder,
    load_encoder_file,
    save_checkpoint,
)
from pipelines.run.config import TrainConfig
from pipelines.run.spectral_prior import attach_spectral_prior
from pipelines.train.build import build_parallel_model, compute_dtype, model_config
from pipelines.train.channel_dropout import kept_channels
from pipelines.train.data import Artifact, StepBatches, describe_artifact, step_loader
from pipelines.train.distributed import RankContext, init_rank, shutdown
from pipelines.train.extend import new_groups
from pipelines.train.flops import peak_flops, rank_flops
from pipelines.train.metrics import MetricsLog
from pipelines.train.optim import build_optimizer, clear_grads, clip_grads, lr_at, set_lr
from pipelines.train.preempt import StopRequest, exit_rank_quietly
from pipelines.train.resolve import init_task, saved_tendency
from pipelines.train.rollout import rollout_loss
from pipelines.train.sensor_data import lift_batch
from pipelines.train.trackers import Tracker, open_tracker
from pipelines.train.tune import freeze_for_tuning


class TrainProgress(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def update(self, done: int, status: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    steps_done: int
    final_loss: float
    final_val_loss: float | None
    run: str


def train(cfg: TrainConfig, progress: TrainProgress | None = None) -> TrainResult:
    """Entry point of one rank (the process group is created and torn down here)."""
    ctx = init_rank(cfg.tp_size, cfg.timeout_min)
    stop_quietly_on(signal.SIGTERM)
    stop_quietly_on(signal.SIGHUP)
    try:
        dist.barrier()  # under torchrun, global rank 0 has prepared the run folder by now
        result = _Trainer(cfg, ctx, progress if ctx.is_main else None).run()
    except BaseException as exc:
        if dist.is_initialized():  # no barrier: the other ranks may be stuck mid-step
            dist.destroy_process_group()
        if isinstance(exc, KeyboardInterrupt | Interrupted) and ctx.world > 1:
            # Every rank got the signal: one line comes from the launcher, not a traceback
            # from each worker. The last finished checkpoint is intact; a checkpoint being
            # written stays `.partial` and is removed by the next run.
            exit_rank_quietly(130 if isinstance(exc, KeyboardInterrupt) else 128 + exc.signum)
        if ctx.world > 1 and peer_lost(exc):
            # Another rank died (killed, out of memory): its failure is what the launcher
            # reports, in one line; this rank's broken collective adds nothing to it.
            leave_after_the_launcher_sees_the_dead_rank()
            raise SystemExit(1) from None
        raise
    shutdown()
    return result


def leave_after_the_launcher_sees_the_dead_rank(wait_s: float = 5.0) -> None:
    """A launcher reports the first failed rank it finds, and it looks every fraction of a
    second: were this survivor to exit at once, it could be found first and named instead
    of the rank that died. It waits until the launcher, having found the dead rank, stops
    it (SIGTERM, or a Ctrl-C meanwhile), or `wait_s` at most without one."""
    def leave(sig: int, frame: Any) -> None:
        raise SystemExit(1)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # only the main thread may
            signal.signal(sig, leave)
    with contextlib.suppress(SystemExit):
        time.sleep(wait_s)


def peer_lost(exc: BaseException) -> bool:
    """A collective failed because a peer went away (not an error of this rank)."""
    text = str(exc)
    if "imed out" in text or "timeout" in text.lower():
        return False  # a hang: this rank's message is the one that says where
    if isinstance(exc, dist.DistError) and not isinstance(exc, dist.DistStoreError):
        return True
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer",
                            "Broken pipe"))


def stop_quietly_on(signum: int) -> None:
    """A scheduler's SIGTERM stops training like Ctrl-C does (no traceback)."""
    def handler(sig: int, frame: Any) -> None:
        raise Interrupted(sig)

    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signum, handler)


class _Trainer:
    def __init__(self, cfg: TrainConfig, ctx: RankContext, progress: TrainProgress | None):
        self.cfg, self.ctx, self.progress = cfg, ctx, progress
        self.run_dir = Path(cfg.out)
        self.art: Artifact = replace(describe_artifact(Path(cfg.data), cfg),
                                     tendency_std=saved_tendency(self.run_dir))
        self.mcfg = model_config(cfg, self.art)
        self.model = build_parallel_model(cfg, self.art, ctx)
        attach_spectral_prior(self.model, json.loads((self.run_dir / "model.json").read_text()),
                              cfg.channel_dropout)
        trainable, total = freeze_for_tuning(self.model, cfg.tune, new_groups(
            self.mcfg, len(cfg.new_channels or [])))
        if cfg.tune != "all" and ctx.rank == 0:
            note(f"--tune {cfg.tune}: {trainable:,} of {total:,} parameters train "
                 f"({100 * trainable / max(total, 1):.1f} %, rank 0's shards)")
        self.opt = build_optimizer(self.model, cfg.lr, cfg.weight_decay)
        self.tp_group = ctx.tp_mesh.get_group() if ctx.tp_mesh.size() > 1 else None
        self.tp_local = tp_local_names(self.model, ctx.tp_mesh.size())
        dev = ctx.device
        self.norm = Normalizer(torch.from_numpy(self.art.mean), torch.from_numpy(self.art.std)
                               ).to(dev)
        self.lift = lift_batch(self.art.sensor, dev)  # another sensor's bands → the model's
        out = self.art.out_index
        self.target_norm = Normalizer(torch.from_numpy(self.art.mean[out]),
                                      torch.from_numpy(self.art.std[out])).to(dev)
        self.lat = None
        self.grid: tuple[np.ndarray, np.ndarray] | None = None  # for forcings
        if self.art.kind == "era5":
            group = zarr.open_group(str(self.art.path), mode="r")
            lat = np.asarray(group["lat"][:], np.float64)
            self.lat = torch.from_numpy(lat.astype(np.float32)).to(dev)
            if self.art.forcings:
                self.grid = (lat, np.asarray(group["lon"][:], np.float64))
        self.local_batch = cfg.batch_size // cfg.dp_size
        self.train_ds = StepBatches(self.art, cfg, "train", ctx.dp_rank, cfg.dp_size,
                                    self.mcfg.num_patches)
        try:
            self.val_ds: StepBatches | None = StepBatches(
                self.art, cfg, "val", ctx.dp_rank, cfg.dp_size, self.mcfg.num_patches)
        except DchagError:
            self.val_ds = None  # too little data for a validation split
        # Per rank and component (what is sharded, what every rank repeats), as the bench.
        self.flops = rank_flops(self.mcfg, cfg.task, self.local_batch, cfg.mask_ratio,
                                ctx.tp_mesh.size(), cfg.aggregation == "head-split")
        self.peak = peak_flops(dev)

    # -- one step ------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        dev = self.ctx.device
        x = self.norm(self.lift(batch["x"].to(dev, non_blocking=True)))
        keep = self.kept(int(batch["step"])) if self.model.training else None
        if self.cfg.task == "mae":  # dropped bands are reconstructed whole (`full`)
            loss, _, _ = self.model(x if keep is None else x[:, keep], channel_ids=keep,
                                    mask_ratio=self.cfg.mask_ratio,
                                    norm_pix_loss=self.cfg.norm_pix_loss,
                                    noise=batch["noise"].to(dev),
                                    full=None if keep is None else x)
            return loss
        y = self.target_norm(batch["y"].to(dev, non_blocking=True))
        return rollout_loss(self.model, x, y, batch["lead"].to(dev), batch["time"],
                            self.lat, self.grid, keep)

    def kept(self, step: int) -> Tensor | None:
        """`--channel-dropout`: the channels this step trains with (None: all)."""
        if not self.cfg.channel_dropout:
            return None
        agg = getattr(self.model.encoder, "aggregator", None)
        bounds = list(agg.bounds) if agg is not None and self.mcfg.variant != "baseline" \
            else None
        keep = kept_channels(step, self.cfg.seed, self.cfg.channel_dropout,
                             len(self.art.channel_index), self.mcfg.channels, bounds)
        return None if keep is None else keep.to(self.ctx.device)

    def dp_mean(self, value: Tensor) -> float:
        v = value.detach().float().reshape(1).clone()
        dist.all_reduce(v, group=self.ctx.dp_mesh.get_group())
        return float(v) / self.cfg.dp_size

    def validate(self) -> float | None:
        if self.val_ds is None:
            return None
        self.model.eval()
        total = torch.zeros((), device=self.ctx.device)
        with torch.no_grad():
            for i in range(self.cfg.val_batches):
                total += self.loss(self.val_ds[i]).detach().float()
        self.model.train()
        return self.dp_mean(total / self.cfg.val_batches)

    def peak_memory(self) -> list[int]:
        if self.ctx.device.type == "cuda":
            mine = torch.cuda.max_memory_allocated(self.ctx.device)
        else:  # the process's peak resident memory (Linux reports KiB)
            mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        local = torch.tensor([mine], dtype=torch.int64, device=self.ctx.device)
        every = torch.zeros(self.ctx.world, dtype=torch.int64, device=self.ctx.device)
        all_gather_flat(every, local)
        return [int(v) for v in every.cpu()]

    def agreed_checkpoint(self, run: Path) -> Path | None:
        """The newest intact checkpoint of `run`, chosen by global rank 0 (which also says
        which damaged ones it skipped) and the same on every rank."""
        step = torch.tensor([-1], dtype=torch.int64, device=self.ctx.device)
        if self.ctx.is_main:
            ckpt, skipped = intact_checkpoint(run)
            for why in skipped:
                note(f"{why}; falling back to an earlier checkpoint")
            if ckpt is not None:
                if skipped:
                    note(f"resuming from {ckpt}")
                step[0] = int(ckpt.name[5:])
        dist.broadcast(step, src=0)
        return None if step.item() < 0 else checkpoint_root(run) / f"step_{step.item():08d}"

    # -- the loop ------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        start = 0
        resume_from = self.agreed_checkpoint(self.run_dir)
        if resume_from is not None:
            start = load_checkpoint(resume_from, self.model, self.opt)
        elif cfg.init:
            # a model of this task is taken whole; a forecaster takes an MAE's encoder
            whole = init_task(Path(cfg.init)) == cfg.task
            if is_model_file(Path(cfg.init)):
                load_encoder_file(Path(cfg.init), self.model, whole)
            else:
                init = self.agreed_checkpoint(Path(cfg.init))
                if init is None:
                    raise DchagError("the run has no intact checkpoint", path=cfg.init)
                load_encoder(init, self.model, whole)
        log = MetricsLog(self.run_dir, start) if ctx.is_main else None
        tracker = open_tracker(cfg.logger, self.run_dir, start) if ctx.is_main else None
        try:
            with StopRequest().deferred() as stop:
                return self._steps(start, log, tracker, stop)
        finally:
            if tracker is not None:
                tracker.close()

    def _steps(self, start: int, log: MetricsLog | None, tracker: Tracker | None,
               stop: StopRequest) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        if self.progress:
            self.progress.start(cfg.steps, start)
        loader = step_loader(self.train_ds, start, cfg.steps,
                             worker_processes(cfg.workers, quiet=self.ctx.rank != 0),
                             pin=ctx.device.type == "cuda")
        tokens = self.mcfg.channels * self.mcfg.num_patches
        if cfg.task == "mae":
            tokens = self.mcfg.channels * round(self.mcfg.num_patches * (1 - cfg.mask_ratio))
        window_loss = torch.zeros((), device=ctx.device)
        window_steps, window_t0 = 0, time.perf_counter()
        last_loss, last_val = math.nan, None
        done = start
        for batch in loader:
            step = int(batch["step"])
            lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.steps)
            set_lr(self.opt, lr)
            loss = self.loss(batch)
            loss.backward()
            gnorm = clip_grads(self.model, cfg.clip, self.tp_group, self.tp_local)
            self.opt.step()
            clear_grads(self.model)
            window_loss += loss.detach().float()
            window_steps += 1
            done = step + 1
            record: dict[str, Any] | None = None
            if done % cfg.log_every == 0 or done == cfg.steps:
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize(ctx.device)
                seconds = (time.perf_counter() - window_t0) / window_steps
                last_loss = self.dp_mean(window_loss / window_steps)
                tflops = self.flops["total"] / seconds / 1e12
                record = {"step": done, "loss": last_loss, "lr": lr, "grad_norm": gnorm,
                          "samples_per_s": cfg.batch_size / seconds,
                          "tokens_per_s": cfg.batch_size * tokens / seconds,
                          "tflops_per_rank": tflops,
                          "mfu": tflops * 1e12 / self.peak if self.peak else None,
                          "peak_mem_bytes": self.peak_memory()}
                if not math.isfinite(last_loss):
                    raise DchagError(f"the loss became {last_loss} at step {done}",
                                     path=self.run_dir,
                                     fix="lower --lr or check the data for NaNs; "
                                     "--resume restarts from the last checkpoint")
            if self.val_ds is not None and (done % cfg.val_every == 0 or done == cfg.steps):
                last_val = self.validate()
                record = record or {"step": done}
                record["val_loss"] = last_val
            if record is not None:
                if log is not None:
                    log.add(record)
                if tracker is not None:
                    tracker.log(record)
                if self.progress:
                    status = {k: v for k, v in record.items()
                              if k in ("loss", "val_loss", "samples_per_s")}
                    if record.get("peak_mem_bytes"):
                        status["peak_mem_bytes"] = max(record["peak_mem_bytes"])
                    self.progress.update(done, status)
                window_loss.zero_()
                window_steps, window_t0 = 0, time.perf_counter()
            stopping = done == cfg.stop_at
            signalled = stop.agreed(ctx.device)  # the ranks agree after every step
            if done % cfg.ckpt_every == 0 or done == cfg.steps or stopping or signalled:
                save_checkpoint(self.run_dir, done, self.model, self.opt, cfg.keep, ctx.is_main)
                if log is not None:
                    self.write_outputs(log)
            if signalled:
                raise Interrupted(signalled)  # a checkpoint of this step is written
            if stopping:
                break
        if log is not None and done == start:
            self.write_outputs(log)
        return TrainResult(done, last_loss, last_val, str(self.run_dir))

    def write_outputs(self, log: MetricsLog) -> None:
        attrs = {"dchag_artifact": "metrics", "run": str(self.run_dir.resolve()),
                 "model": self.mcfg.to_dict(), "channels": self.art.channel_names,
                 "mesh": {"dp": self.cfg.dp_size, "tp": self.cfg.tp_size},
                 "dtype": str(compute_dtype(self.cfg, self.ctx.device)),
                 "flops_per_step_per_rank": self.flops,
                 "provenance": provenance(f"train {self.cfg.task}", self.cfg.to_dict(),
                                          [Path(self.cfg.data)], seed=self.cfg.seed)}
        log.write_zarr(self.run_dir / "metrics.zarr", attrs)
        what = "MAE reconstruction" if self.cfg.task == "mae" else "lat-weighted MSE"
        log.plot(self.run_dir / "loss.png", f"{what}: {self.cfg.preset}, D-CHAG "
                 f"{self.cfg.variant}, tree {self.cfg.tree}, dp {self.cfg.dp_size} × "
                 f"tp {self.cfg.tp_size}")
