"""`prep era5` end to end against the plain decode of the same files on the same cores.

The plain decode is what any reader pays before it can do anything: open each file and
decode (decompress, unpack, mask) every field the prep needs — the requested variables
at the requested levels, whole fields — in the same number of worker processes. The
prep's rate includes everything it does on top: describing and checking the files, the
regrid, statistics, climatology and writing the zarr store.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import xarray as xr

from pipelines.data.channels import resolve_channels


@dataclass
class PrepBenchResult:
    files: int
    channels: int
    fields: int
    workers: int
    decode_fields_per_s: float
    prep_fields_per_s: float
    prep_vs_decode: float
    prep_seconds: float
    decode_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _decode_file(path: str, wanted: list[tuple[str, list[int] | None]]) -> int:
    """Decode the wanted (variable, levels) of one file; returns the fields decoded."""
    n = 0
    with xr.open_dataset(path, engine="netcdf4", cache=False) as ds:  # decoded: unpacked
        ds = ds.rename({k: v for k, v in (("pressure_level", "level"), ("level", "level"))
                        if k in ds.dims})
        for var, levels in wanted:
            da = ds[var] if levels is None else ds[var].isel(level=levels)
            values = np.asarray(da.values, np.float32)
            n += values.size // (values.shape[-1] * values.shape[-2])
    return n


def _tasks(paths: list[Path], names: list[str]) -> list[tuple[str, list]]:
    from pipelines.data.era5_read import open_era5

    channels = resolve_channels(None, ",".join(names))
    tasks = []
    for p in paths:
        f = open_era5(p)
        wanted = []
        for var in sorted({c.variable for c in channels}):
            if var not in f.variables:
                continue
            levels = [f.level_index(c.level) for c in channels
                      if c.variable == var and c.level is not None]
            levels = [lv for lv in levels if lv is not None]
            if f.levels is not None and not levels:
                continue
            wanted.append((f.variables[var], levels if f.levels is not None else None))
        if wanted:
            tasks.append((str(p), wanted))
    return tasks


def bench_prep_era5(sources: list[Path], channels: str, workers: int) -> PrepBenchResult:
    from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
    from pipelines.data.era5_read import expand_sources

    with expand_sources(sources) as paths:
        tasks = _tasks(paths, channels.split(","))
        t0 = time.perf_counter()
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            decoded = sum(pool.map(_decode_file, *zip(*tasks, strict=True)))
        decode_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="dchag-bench-") as tmp:
            summary = prep_era5(Era5PrepConfig(sources=paths, out=Path(tmp) / "b.zarr",
                                               channels=channels, workers=workers))
    fields = summary.new_times * summary.channels
    decode_rate = decoded / decode_s
    return PrepBenchResult(files=len(paths), channels=summary.channels, fields=fields,
                           workers=workers, decode_fields_per_s=decode_rate,
                           prep_fields_per_s=summary.fields_per_s,
                           prep_vs_decode=summary.fields_per_s / decode_rate,
                           prep_seconds=summary.seconds, decode_seconds=decode_s)
