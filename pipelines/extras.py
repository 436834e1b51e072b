"""Optional dependencies (the `sample`, `tensorboard` and `grib` extras): one check, one
message naming the extra, raised before anything is written."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from pipelines.errors import DchagError


def require(module: str, purpose: str, extra: str, path: Path | None = None) -> ModuleType:
    """`module`, imported; if it is not installed, a one-line error saying how to get it."""
    if importlib.util.find_spec(module) is None:
        raise DchagError(f"{purpose} needs the {module} package", path=path,
                         fix=f"pip install 'dchag[{extra}]' (or pip install {module})")
    return importlib.import_module(module)
