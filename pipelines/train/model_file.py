"""One portable file per trained model: safetensors with the model's config embedded.

A run's checkpoints are DCP folders sharded by the layout it trained on (FSDP × TP ×
channel groups). `export_model` consolidates the newest intact one into plain tensors and
writes a single `.safetensors` file whose metadata holds what inference needs: the run's
`config.json` and `model.json` (model config, channels, normalisation, grid, periods).
safetensors is a data-only format (a JSON header and raw tensor bytes): reading it can
never run code, so a model file from anyone is as safe to open as a zarr store.

The file stands in for a run folder wherever one is read: `eval forecast --run`,
`predict masks --run`, `train forecast --init`.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines import __version__
from pipelines.errors import DchagError
from pipelines.fsops import temp_sibling

FORMAT = "dchag-model/1"
SUFFIX = ".safetensors"
MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def is_model_file(path: Path) -> bool:
    return Path(path).suffix == SUFFIX and Path(path).is_file()


def read_metadata(path: Path) -> dict[str, str]:
    """The header's `__metadata__`, read as JSON (no tensor is touched), checked to be ours."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if not 0 < size <= MAX_HEADER:
                raise ValueError(f"header size {size}")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise DchagError(f"not a readable safetensors file ({exc})", path=path,
                         fix="export it again with `dchag export model RUN --out FILE`") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DchagError("a safetensors file without dchag's model metadata", path=path,
                         fix="use a file written by `dchag export model`")
    return meta


def model_file_kind(path: Path) -> str | None:
    """`model` for a dchag model file (what `--overwrite` may replace), else None."""
    try:
        return "model" if read_metadata(path) else None
    except DchagError:
        return None


@dataclass
class ModelFile:
    config: dict  # the run's config.json
    info: dict  # the run's model.json
    step: int
    source: str  # the run it was exported from


def open_model_file(path: Path) -> ModelFile:
    meta = read_metadata(path)
    try:
        return ModelFile(json.loads(meta["config"]), json.loads(meta["model"]),
                         int(meta["step"]), meta.get("source", ""))
    except (KeyError, ValueError) as exc:
        raise DchagError(f"its metadata is incomplete ({exc})", path=path,
                         fix="export it again with `dchag export model`") from exc


def load_tensors(path: Path, expected: dict[str, torch.Tensor], subset: bool = False,
                 read: bool = True) -> dict[str, torch.Tensor]:
    """The file's tensors, required to match `expected` name for name and shape for shape
    (the model being built; with `subset`, only those names are taken): a file from
    another configuration is refused in one line. Shapes are checked from the header
    before any tensor is read, and only the tensors taken are read (none: `read=False`)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            if subset:
                shapes = {k: v for k, v in shapes.items() if k in expected}
            missing = sorted(set(expected) - set(shapes))
            extra = sorted(set(shapes) - set(expected))
            # a DTensor's .shape is its global shape, so sharded models compare whole
            wrong = [k for k in expected if k in shapes and shapes[k] != expected[k].shape]
            if missing or extra or wrong:
                first = (missing or extra or wrong)[0]
                raise DchagError(f"its tensors do not fit this model ({len(missing)} missing, "
                                 f"{len(extra)} unexpected, {len(wrong)} of another shape; "
                                 f"e.g. {first})", path=path, fix="use a model file exported "
                                 "from a run with the same --preset, --variant, channels and "
                                 "task")
            return {k: f.get_tensor(k) for k in shapes} if read else {}
    except (SafetensorError, OSError) as exc:
        raise DchagError(f"cannot read its tensors ({exc})", path=path,
                         fix="the file is damaged: export it again") from exc


@dataclass
class ExportSummary:
    out: Path
    tensors: int
    parameters: int
    bytes: int
    step: int


def export_model(run: Path, out: Path) -> ExportSummary:
    """Consolidate the run's newest intact checkpoint (any sharding) into one file."""
    from safetensors.torch import save_file

    from pipelines.eval.runs import load_run
    from pipelines.train.config import load_run_config

    cfg = load_run_config(run)
    trained = load_run(run, cfg.task, torch.device("cpu"))
    state = {k: v.detach().to("cpu").contiguous().clone()
             for k, v in trained.model.state_dict().items()}
    meta = {"format": FORMAT, "dchag_version": __version__, "task": cfg.task,
            "step": str(trained.step), "source": str(Path(run).resolve()),
            "config": json.dumps(cfg.to_dict()), "model": json.dumps(trained.info)}
    tmp = temp_sibling(out, "partial")
    try:
        save_file(state, str(tmp), metadata=meta)
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes 0600; the user's umask rules
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportSummary(out, len(state), sum(v.numel() for v in state.values()),
                         out.stat().st_size, trained.step)


def _umask() -> int:
    """The process's umask (read by setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_whole_file(path: Path) -> None:
    """The file holds exactly the tensors of the model its metadata describes — no extra,
    none missing, none of another shape — checked from the header alone (`--init` takes
    only part of a file, so this is what catches a tampered or foreign one early)."""
    from pipelines.model.config import ModelConfig
    from pipelines.model.forecast import Forecaster
    from pipelines.model.mae import MAE

    found = open_model_file(path)
    try:
        mcfg = ModelConfig.from_dict(found.info["model"])
        with torch.device("meta"):
            if found.config.get("task") == "forecast":
                names = found.info["channel_names"]
                model: torch.nn.Module = Forecaster(
                    mcfg, out_index=[names.index(c) for c in found.info["out_channels"]])
            else:
                model = MAE(mcfg)
    except (KeyError, ValueError, TypeError) as exc:
        raise DchagError(f"its metadata does not describe a model ({exc})", path=path,
                         fix="export it again with `dchag export model`") from exc
    load_tensors(path, model.state_dict(), read=False)
