"""What every artifact records about how it was made: config, inputs, code version, seed."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines import __version__


def code_version() -> str:
    """Package version, plus the git commit when running from a checkout (helps bisecting)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}" if commit else __version__


def describe_inputs(paths: list[Path]) -> list[dict[str, Any]]:
    """Name, size and modification time of each input, enough to tell if an input changed."""
    out = []
    for p in paths:
        if hasattr(p, "describe"):  # a remote store: its URL
            out.append(p.describe())
            continue
        st = p.stat()
        out.append({
            "path": str(p.resolve()),
            "bytes": st.st_size,
            "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(timespec="seconds"),
        })
    return out


def _package_versions() -> dict[str, str]:
    # importlib.metadata avoids importing torch (seconds) just to read its version.
    out = {}
    for name in ("numpy", "torch", "xarray", "zarr", "netCDF4", "spectral", "scikit-image"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(stage: str, config: dict[str, Any], inputs: list[Path],
               seed: int | None = None) -> dict[str, Any]:
    """The `provenance` attribute written into every zarr artifact."""
    return {
        "stage": stage,
        "dchag_version": code_version(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "user": os.environ.get("USER", ""),
        "seed": seed,
        "config": config,
        "inputs": describe_inputs(inputs),
        "versions": {"python": platform.python_version(), **_package_versions()},
    }
