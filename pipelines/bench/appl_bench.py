"""ENVI → zarr conversion rate, and how fast the training loader reads `appl.zarr`."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from pipelines.data.appl_prep import ApplPrepConfig, prep_appl
from pipelines.data.datasets import ApplBatches
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
    loader_samples_per_s: float
    loader_mb_per_s: float
    loader_workers: int

    def to_dict(self) -> dict:
        return asdict(self)


def bench_appl(cubes: int = 8, source_size: int = 256, size: int = 256, bands: int = 500,
               workers: int = 0, epochs: int = 3, compress: bool = False,
               workdir: Path | None = None) -> ApplBenchResult:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        raw = Path(tmp) / "raw"
        generate_appl(raw, cubes, source_size, seed=0)
        summary = prep_appl(ApplPrepConfig(sources=[raw / "manifest.csv"],
                                           out=Path(tmp) / "appl.zarr", size=size, bands=bands,
                                           compress=compress))
        ds = ApplBatches(Path(tmp) / "appl.zarr")
        batches = BatchSampler(RandomSampler(ds), batch_size=4, drop_last=False)
        loader = DataLoader(ds, sampler=batches, batch_size=None, num_workers=workers,
                            persistent_workers=workers > 0)
        for _ in loader:  # warm-up: workers started, files in the page cache
            pass
        t0 = time.perf_counter()
        n = 0
        bytes_read = 0
        for _ in range(epochs):
            for cube, _ in loader:
                n += cube.shape[0]
                bytes_read += cube.numel() * cube.element_size()
        dt = time.perf_counter() - t0
        del loader
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return ApplBenchResult(cubes=cubes, source_size=source_size, size=size, bands=bands,
                           compress=compress, prep_cubes_per_s=summary.cubes_per_s,
                           prep_mb_per_s=summary.mb_per_s, loader_samples_per_s=n / dt,
                           loader_mb_per_s=bytes_read / 1e6 / dt, loader_workers=workers)
