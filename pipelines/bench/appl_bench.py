"""ENVI → zarr conversion rate, the rate of the loader training uses, and what the
chosen preset consumes per second on this machine.

The loader is training's own (`StepBatches` through `step_loader`, the same worker
processes and prefetch), reading the prepared `appl.zarr`; next to it, the per-sample
zarr band-list read that training used before whole-chunk reads, and the samples per
second one training step of the preset takes (forward, backward, AdamW; this machine,
one process) — a loader slower than that would starve training.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import zarr

from pipelines.data.appl_prep import ApplPrepConfig, prep_appl
from pipelines.sample.appl import generate_appl


@dataclass
class ApplBenchResult:
    cubes: int
    source_size: int
    size: int
    bands: int
    compress: bool
    prep_cubes_per_s: float
    prep_mb_per_s: float
    loader_samples_per_s: float  # the loader training uses
    loader_mb_per_s: float
    loader_workers: int
    band_list_samples_per_s: float  # zarr band-list reads, as training read before
    preset: str
    patch: int
    batch: int
    consume_samples_per_s: float  # one training step of the preset, this machine
    loader_vs_consumption: float

    def to_dict(self) -> dict:
        return asdict(self)


def _loader_rate(store: Path, preset: str, patch: int, batch: int, workers: int,
                 steps: int) -> tuple[float, float]:
    from pipelines.run.config import TrainConfig
    from pipelines.train.data import StepBatches, describe_artifact, step_loader

    cfg = TrainConfig(task="mae", data=str(store), preset=preset, patch=patch,
                      batch_size=batch, steps=steps + 2, val_fraction=0.0, workers=workers)
    art = describe_artifact(store, cfg)
    ds = StepBatches(art, cfg, "train", 0, 1, (art.img_size[0] // patch) *
                     (art.img_size[1] // patch))
    loader = iter(step_loader(ds, 0, steps + 2, workers, pin=False))
    next(loader), next(loader)  # workers started, files in the page cache
    n = nbytes = 0
    t0 = time.perf_counter()
    for b in loader:
        n += b["x"].shape[0]
        nbytes += b["x"].numel() * b["x"].element_size()
    dt = time.perf_counter() - t0
    return n / dt, nbytes / 1e6 / dt


def _band_list_rate(store: Path, reads: int) -> float:
    cube = zarr.open_group(str(store), mode="r")["cube"]
    bands = list(range(cube.shape[1]))
    t0 = time.perf_counter()
    for i in range(reads):
        cube.get_orthogonal_selection((i % cube.shape[0], bands, slice(None), slice(None)))
    return reads / (time.perf_counter() - t0)


def consumption_rate(preset: str, bands: int, size: int, patch: int, batch: int,
                     steps: int = 3) -> float:
    """Samples/s of MAE training steps of the preset (fp32, this process, its threads)."""
    from pipelines.model.config import preset_config
    from pipelines.model.factory import make_model
    from pipelines.train.optim import build_optimizer, clear_grads

    model = make_model(preset_config(preset, bands, img_size=(size, size), patch=patch), "mae")
    opt = build_optimizer(model, 1e-4, 0.05)
    x = torch.randn(batch, bands, size, size)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(x, mask_ratio=0.75)[0]
        loss.backward()
        opt.step()
        clear_grads(model)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times[1:]))  # the first step warms up


def bench_appl(cubes: int = 8, source_size: int = 256, size: int = 256, bands: int = 500,
               workers: int = 2, steps: int = 12, compress: bool = False,
               preset: str = "small", patch: int = 16, batch: int = 8,
               workdir: Path | None = None) -> ApplBenchResult:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        raw = Path(tmp) / "raw"
        generate_appl(raw, cubes, source_size, seed=0)
        store = Path(tmp) / "appl.zarr"
        summary = prep_appl(ApplPrepConfig(sources=[raw / "manifest.csv"], out=store,
                                           size=size, bands=bands, compress=compress))
        loader, mb = _loader_rate(store, preset, patch, batch, workers, steps)
        band_list = _band_list_rate(store, reads=2 * cubes)
    consume = consumption_rate(preset, bands, size, patch, batch)
    return ApplBenchResult(
        cubes=cubes, source_size=source_size, size=size, bands=bands, compress=compress,
        prep_cubes_per_s=summary.cubes_per_s, prep_mb_per_s=summary.mb_per_s,
        loader_samples_per_s=loader, loader_mb_per_s=mb, loader_workers=workers,
        band_list_samples_per_s=band_list, preset=preset, patch=patch, batch=batch,
        consume_samples_per_s=consume, loader_vs_consumption=loader / consume)
