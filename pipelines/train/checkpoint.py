"""Sharded checkpoints with torch.distributed.checkpoint (DCP).

Each rank writes its own shards (FSDP's dp shards, TP's head and MLP slices, the channel
groups it owns); DCP's metadata lets a later run on another (dp, tp) layout read what it
needs. A checkpoint is written to `step_N.partial` and renamed to `step_N` only when
every rank has finished, then `latest` is updated; a failed write (a full disk, a
crash) leaves the previous checkpoint as it was. Only tensors and plain numbers are
stored: loading never unpickles code.
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


def checkpoint_root(run: Path) -> Path:
    return Path(run) / "checkpoints"


def latest_checkpoint(run: Path) -> Path | None:
    pointer = checkpoint_root(run) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoint_root(run) / pointer.read_text().strip()
    return path if (path / ".metadata").is_file() else None


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
        if is_main:
            (partial / "train_state.json").write_text(json.dumps({"step": step}))
    except Exception as exc:
        if is_main:
            shutil.rmtree(partial, ignore_errors=True)
        previous = latest_checkpoint(run)
        kept = f"the previous checkpoint {previous.name} is intact" if previous else \
            "no earlier checkpoint exists"
        reason = "out of disk space" if _is_disk_full(exc) else f"{type(exc).__name__}"
        raise DchagError(f"writing the checkpoint of step {step} failed ({reason}); {kept}",
                         path=root, fix="free space (or change --out) and --resume") from exc
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
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(e):
            return True
        stack += [x for x in (e.__cause__, e.__context__) if x is not None]
        failures = getattr(e, "failures", None)
        if isinstance(failures, dict):
            stack += [x for x in failures.values() if isinstance(x, BaseException)]
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
    try:
        dcp.load(state, checkpoint_id=str(path))
    except Exception as exc:
        raise DchagError(f"cannot load this checkpoint ({_first_line(exc)})", path=path,
                         fix="it was probably written by a different model configuration"
                         ) from exc
    set_model_state_dict(model, state["model"])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optim"])
    return checkpoint_step(path)


def load_encoder(path: Path, model: nn.Module) -> None:
    """Collective: initialise `model.encoder` from another run's checkpoint (fine-tuning)."""
    full = get_model_state_dict(model)
    state = {"model": {k: v for k, v in full.items() if k.startswith("encoder.")}}
    try:
        dcp.load(state, checkpoint_id=str(path))
    except Exception as exc:
        raise DchagError(f"cannot take the encoder from this checkpoint ({_first_line(exc)})",
                         path=path, fix="the pretrained run must use the same model settings"
                         ) from exc
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
