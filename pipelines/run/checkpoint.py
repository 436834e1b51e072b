"""Sharded checkpoints with torch.distributed.checkpoint (DCP).

Each rank writes its own shards (FSDP's dp shards, TP's head and MLP slices, the channel
groups it owns); DCP's metadata lets a later run on another (dp, tp) layout read what it
needs. A checkpoint is written to `step_N.partial` and renamed to `step_N` only when
every rank has finished, then `latest` is updated; a failed write (a full disk, a
crash) leaves the previous checkpoint as it was; a later run removes the partial folder.
Loading goes through `safe_checkpoint`: never unpickles code, finds truncated shards
first, and resume falls back to the newest intact checkpoint.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.optim import Optimizer

from pipelines.errors import DchagError
from pipelines.faults import fault_point
from pipelines.run.safe_checkpoint import checkpoint_problem, first_failure, load_state


def checkpoint_root(run: Path) -> Path:
    return Path(run) / "checkpoints"


def _finished(run: Path) -> list[Path]:
    """Completed checkpoint folders, newest first."""
    root = checkpoint_root(run)
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step_*") if p.is_dir() and not p.suffix
            and p.name[5:].isdigit()]
    return sorted(done, key=lambda p: int(p.name[5:]), reverse=True)


def latest_checkpoint(run: Path) -> Path | None:
    """The newest completed checkpoint folder (not checked for damage)."""
    done = _finished(run)
    return done[0] if done else None


def intact_checkpoint(run: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that can be loaded, and why each newer one cannot."""
    skipped = []
    for ckpt in _finished(run):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt, skipped
        skipped.append(f"{ckpt.name} is damaged ({problem})")
    return None, skipped


def clean_partials(run: Path) -> None:
    """Remove `step_N.partial` folders a killed run left (call with the run's lock held)."""
    root = checkpoint_root(run)
    for p in root.glob("step_*.partial") if root.is_dir() else ():
        shutil.rmtree(p, ignore_errors=True)


def checkpoint_step(path: Path) -> int:
    return int(json.loads((path / "train_state.json").read_text())["step"])


def save_checkpoint(run: Path, step: int, model: nn.Module, optimizer: Optimizer,
                    keep: int, is_main: bool) -> Path:
    """Collective: every rank calls it. Returns the finished checkpoint's folder."""
    root = checkpoint_root(run)
    final = root / f"step_{step:08d}"
    partial = root / f"step_{step:08d}.partial"
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    dist.barrier()
    state = {"model": get_model_state_dict(model),
             "optim": get_optimizer_state_dict(model, optimizer)}
    try:
        dcp.save(state, checkpoint_id=str(partial))
        fault_point("checkpoint:shards-written")
        if is_main:
            (partial / "train_state.json").write_text(json.dumps({"step": step}))
    except BaseException as exc:  # DCP's CheckpointException is not an Exception
        if is_main:
            shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        previous = latest_checkpoint(run)
        kept = f"the previous checkpoint {previous.name} is intact" if previous else \
            "no earlier checkpoint exists"
        reason = "out of disk space" if _is_disk_full(exc) else first_failure(exc)
        raise DchagError(f"writing the checkpoint of step {step} failed ({reason}); {kept}",
                         path=partial, fix="free space (or change --out) and --resume") from None
    dist.barrier()
    if is_main:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        pointer = root / "latest.tmp"
        pointer.write_text(final.name)
        pointer.replace(root / "latest")
        _prune(root, keep)
    dist.barrier()
    return final


def _is_disk_full(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e):
            return True
        stack += [x for x in (e.__cause__, e.__context__) if x is not None]
        failures = getattr(e, "failures", None)
        if isinstance(failures, dict):
            for value in failures.values():
                value = value[0] if isinstance(value, tuple) else value
                if isinstance(value, BaseException):
                    stack.append(value)
    return False


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step_*") if p.is_dir() and not p.suffix)
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, model: nn.Module, optimizer: Optimizer | None) -> int:
    """Collective: load into the already parallelised model (any dp × tp layout)."""
    state = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        state["optim"] = get_optimizer_state_dict(model, optimizer)
    load_state(state, path)
    set_model_state_dict(model, state["model"])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optim"])
    return checkpoint_step(path)


def load_encoder(path: Path, model: nn.Module, whole: bool = False) -> None:
    """Collective: initialise `model.encoder` (or, `whole`, every weight: a forecaster
    fine-tuned from another) from another run's checkpoint."""
    full = get_model_state_dict(model)
    state = {"model": {k: v for k, v in full.items() if whole or k.startswith("encoder.")}}
    load_state(state, path, allow_partial=True)
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))


def load_encoder_file(path: Path, model: nn.Module, whole: bool = False) -> None:
    """Collective: initialise `model.encoder` (or, `whole`, every weight) from a model file
    of `dchag export model`. Every rank reads the whole (consolidated) tensors and keeps
    its own shards."""
    from pipelines.run.model_file import load_tensors

    full = get_model_state_dict(model)
    expected = {k: v for k, v in full.items() if whole or k.startswith("encoder.")}
    tensors = load_tensors(path, expected, subset=True)
    set_model_state_dict(model, tensors, options=StateDictOptions(full_state_dict=True,
                                                                  strict=False))
