"""`dchag export model`: a run's newest intact checkpoint, any sharding, as one portable
safetensors file whose header holds what inference needs (`model_header`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines import __version__
from pipelines.fsops import temp_sibling
from pipelines.model_header import FORMAT
from pipelines.run.config import load_run_config
from pipelines.run.load import load_run


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
