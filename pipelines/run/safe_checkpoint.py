"""Reading torch.distributed.checkpoint (DCP) folders as data, never as code.

DCP's own reader unpickles `.metadata` with plain `pickle`, and its default planner loads
every non-tensor value with `torch.load(weights_only=False)`: a run folder someone hands
you could run arbitrary code. Here:

- `.metadata` goes through a restricted unpickler that admits only DCP's own metadata
  classes (and torch sizes, dtypes, layouts, paths) — anything else is refused, naming
  the file and the global it tried to load;
- every value is loaded with `torch.load(weights_only=True)` (tensors, numbers, strings,
  tuples: what an optimizer's param groups hold);
- the files the metadata points at must be plain names inside the checkpoint folder and
  long enough for every byte range it names, so a truncated shard is found before a load
  (`checkpoint_problem`), and resume can fall back to the previous intact checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, StorageMeta

from pipelines.errors import DchagError

METADATA = ".metadata"
_META_MODULE = "torch.distributed.checkpoint.metadata"
_ALLOWED = {
    *((_META_MODULE, n) for n in ("Metadata", "MetadataIndex", "StorageMeta",
                                  "TensorStorageMetadata", "BytesStorageMetadata",
                                  "ChunkStorageMetadata", "TensorProperties",
                                  "_MEM_FORMAT_ENCODING")),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"), ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}


class UnsafeCheckpoint(pickle.UnpicklingError):
    pass


class TamperedCheckpoint(DchagError):
    """A checkpoint holding something other than data: never skipped over quietly (the
    run folder itself cannot be trusted), always refused."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        dtype = module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)
        if (module, name) in _ALLOWED or dtype:
            return super().find_class(module, name)
        raise UnsafeCheckpoint(f"it asks for {module}.{name}, which is not checkpoint data")


def read_metadata(ckpt: Path) -> Metadata:
    """DCP metadata of `ckpt`, unpickled with only DCP's own classes allowed."""
    path = Path(ckpt) / METADATA
    try:
        # From memory, not the file: a length field of 2⁶⁰ in the pickle then meets the
        # end of the bytes (truncated) instead of asking for that much memory.
        md = _MetadataUnpickler(io.BytesIO(path.read_bytes())).load()
    except UnsafeCheckpoint as exc:
        raise TamperedCheckpoint(f"refused to load: {exc}", path=path,
                         fix="only load checkpoints from sources you trust; this one is "
                         "not a plain dchag checkpoint") from None
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError,
            TypeError, IndexError, KeyError, MemoryError, OverflowError,
            RecursionError) as exc:
        raise DchagError(f"unreadable checkpoint metadata ({type(exc).__name__})",
                         path=path, fix="the checkpoint is damaged; use an earlier one") from exc
    if not isinstance(md, Metadata) or not isinstance(md.storage_data, dict):
        raise DchagError("not DCP checkpoint metadata", path=path)
    for info in md.storage_data.values():
        rel = getattr(info, "relative_path", None)
        if (not isinstance(rel, str) or rel != os.path.basename(rel) or rel in ("", ".", "..")
                or getattr(info, "transform_descriptors", None)):
            raise TamperedCheckpoint(f"checkpoint metadata names the file {rel!r}, which is not a "
                             "plain file of this checkpoint", path=path,
                             fix="only load checkpoints from sources you trust")
    return md


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why `ckpt` cannot be loaded (missing or truncated files, bad metadata), or None.
    A tampered checkpoint raises `TamperedCheckpoint` instead: that is no mere damage."""
    ckpt = Path(ckpt)
    try:
        md = read_metadata(ckpt)
        step = json.loads((ckpt / "train_state.json").read_text())["step"]
        if not isinstance(step, int):
            return "train_state.json holds no step number"
    except TamperedCheckpoint:
        raise
    except DchagError as exc:
        return str(exc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{ckpt / 'train_state.json'}: {type(exc).__name__}"
    needed: dict[str, int] = {}
    for info in md.storage_data.values():
        needed[info.relative_path] = max(needed.get(info.relative_path, 0),
                                         int(info.offset) + int(info.length))
    for name, size in needed.items():
        f = ckpt / name
        if not f.is_file():
            return f"{f}: missing"
        if f.stat().st_size < size:
            return f"{f}: truncated ({f.stat().st_size} of {size} bytes)"
    _check_values(ckpt, md)
    return None


def _check_values(ckpt: Path, md: Metadata) -> None:
    """Load every non-tensor value (a few optimizer settings) the safe way now, so a
    planted object is refused before any training or inference starts."""
    for index, info in md.storage_data.items():
        if not isinstance(md.state_dict_metadata.get(index.fqn), BytesStorageMetadata):
            continue
        with open(ckpt / info.relative_path, "rb") as fh:
            fh.seek(int(info.offset))
            raw = fh.read(int(info.length))
        try:
            torch.load(io.BytesIO(raw), weights_only=True)
        except pickle.UnpicklingError as exc:
            raise TamperedCheckpoint(f"refused to load {index.fqn}: {_why(exc)}",
                                     path=ckpt / info.relative_path,
                                     fix="only load checkpoints from sources you trust"
                                     ) from None


def _why(exc: BaseException) -> str:
    """The useful line of torch's long weights-only refusal."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    found = [ln for ln in lines if "Unsupported global" in ln or "GLOBAL" in ln]
    text = (found or lines or [type(exc).__name__])[0]
    return text.split(" was not an allowed global")[0][:160]


class _SafeReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        md = read_metadata(Path(self.path))
        if getattr(md, "storage_meta", None) is None:
            md.storage_meta = StorageMeta()
        md.storage_meta.load_id = self.load_id
        return md


class _SafePlanner(DefaultLoadPlanner):
    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        try:
            obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise TamperedCheckpoint(f"refused to load {read_item.dest_index.fqn}: "
                                     f"{_why(exc)}",
                             fix="only load checkpoints from sources you trust") from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def load_state(state: dict[str, Any], ckpt: Path, no_dist: bool = False,
               allow_partial: bool = False) -> None:
    """`dcp.load` with the safe reader and planner; every failure becomes one DchagError
    naming the checkpoint (DCP raises `CheckpointException`, a BaseException)."""
    planner = _SafePlanner(allow_partial_load=allow_partial)
    try:
        with warnings.catch_warnings():  # "torch.distributed is disabled …": intended
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(state, storage_reader=_SafeReader(str(ckpt)), planner=planner,
                     no_dist=no_dist)
    except DchagError as exc:
        raise type(exc)(f"{exc}", path=ckpt) from None
    except CheckpointException as exc:
        inner = _first_exception(exc)
        if isinstance(inner, TamperedCheckpoint):
            raise TamperedCheckpoint(str(inner), path=ckpt) from None
        raise DchagError(f"cannot load ({first_failure(exc)})", path=ckpt,
                         fix="the checkpoint is damaged or from another model") from None
    except Exception as exc:
        raise DchagError(f"cannot load ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''})", path=ckpt,
                         fix="the checkpoint is damaged or from another model") from exc


def _first_exception(exc: BaseException) -> BaseException | None:
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        inner = failures[min(failures)]
        return inner[0] if isinstance(inner, tuple) else inner  # (exception, traceback)
    return None


def first_failure(exc: BaseException) -> str:
    """The first rank's error inside a CheckpointException, as one line."""
    inner = _first_exception(exc)
    if inner is not None:
        text = str(inner).strip().splitlines()
        if isinstance(inner, DchagError):
            return text[0] if text else "DchagError"
        return f"{type(inner).__name__}: {text[-1][:200]}" if text else type(inner).__name__
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
