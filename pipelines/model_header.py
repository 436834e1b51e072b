"""The header of a dchag model file (`dchag export model`): what it is, read without
torch and without touching a tensor, so the overwrite guard can tell one from any other
file and any command can refuse a foreign file in one line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from pipelines.errors import DchagError

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
