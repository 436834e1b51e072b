"""One portable file per trained model: safetensors with the model's config embedded.

A run's checkpoints are DCP folders sharded by the layout it trained on (FSDP × TP ×
channel groups). `export.export_model` consolidates the newest intact one into plain tensors and
writes a single `.safetensors` file whose metadata holds what inference needs: the run's
`config.json` and `model.json` (model config, channels, normalisation, grid, periods).
safetensors is a data-only format (a JSON header and raw tensor bytes): reading it can
never run code, so a model file from anyone is as safe to open as a zarr store.

The file stands in for a run folder wherever one is read: `eval forecast --run`,
`predict masks --run`, `train forecast --init`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.errors import DchagError
from pipelines.model.factory import make_model
from pipelines.model_header import is_model_file, read_metadata


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


def check_whole_file(path: Path) -> None:
    """The file holds exactly the tensors of the model its metadata describes — no extra,
    none missing, none of another shape — checked from the header alone (`--init` takes
    only part of a file, so this is what catches a tampered or foreign one early)."""
    from pipelines.model.config import ModelConfig

    found = open_model_file(path)
    try:
        mcfg = ModelConfig.from_dict(found.info["model"])
        with torch.device("meta"):
            if found.config.get("task") == "forecast":
                names = found.info["channel_names"]
                model = make_model(mcfg, "forecast", out_index=[
                    names.index(c) for c in found.info["out_channels"]])
            else:
                model = make_model(mcfg, "mae")
    except (KeyError, ValueError, TypeError) as exc:
        raise DchagError(f"its metadata does not describe a model ({exc})", path=path,
                         fix="export it again with `dchag export model`") from exc
    load_tensors(path, model.state_dict(), read=False)


def saved_info(init: Path) -> dict:
    """model.json of a run folder, or the copy a model file carries."""
    if is_model_file(init):
        return open_model_file(init).info
    try:
        return json.loads((init / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise DchagError("cannot read model.json", path=init,
                         fix="point --init at a folder written by `dchag pretrain` or "
                         "`dchag train`") from exc
