"""`prep era5 --dry-run`: what a prep would read — times, channels, chunks and bytes per
input — from the inputs' metadata and coordinates alone, before committing hours of
transfer from a cloud archive to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.data.channels import VARIABLES, resolve_channels
from pipelines.data.era5_plan import Era5Plan, make_plan
from pipelines.data.era5_read import expand_sources, open_era5
from pipelines.data.grid import parse_region, target_grid
from pipelines.data.times import period_hours


@dataclass(frozen=True)
class SourceRead:
    source: str
    channels: list[str]  # channels this input provides
    times: int  # time steps read from it
    field_bytes: int  # the fields read, as float32 on the input's grid
    chunks: int  # stored chunks those fields touch
    chunk_bytes: int  # those chunks, uncompressed (the upper bound of a transfer)


@dataclass(frozen=True)
class DryRun:
    channels: list[str]
    times: np.ndarray  # datetime64[ns], the store's time axis
    grid: str
    sources: list[SourceRead]
    store_bytes: int  # the store's data array, float32, uncompressed


def dry_run(cfg) -> DryRun:
    """Everything `prep_era5(cfg)` would read, with nothing read beyond metadata and
    coordinates and nothing written."""
    channels = resolve_channels(cfg.preset, cfg.channels)
    target = target_grid(cfg.resolution, parse_region(cfg.region))
    with expand_sources([*cfg.sources, *cfg.constants]) as paths:
        files = [open_era5(p, member=cfg.member) for p in paths]
    plan = make_plan(files, channels,
                     period_hours(cfg.period) if cfg.period is not None else None)
    reads = [source_read(plan, fid) for fid in range(len(plan.files))]
    return DryRun(channels=[c.name for c in channels], times=plan.times,
                  grid=f"{target.shape[0]}×{target.shape[1]} at {cfg.resolution:g}°",
                  sources=[r for r in reads if r.times],
                  store_bytes=plan.times.size * len(channels) * int(np.prod(target.shape)) * 4)


def source_read(plan: Era5Plan, fid: int) -> SourceRead:
    """What the plan reads from input `fid`: channels, times, fields and chunks."""
    f = plan.files[fid]
    field = f.grid.lat.size * f.grid.lon.size
    names: list[str] = []
    times: set[int] = set()
    field_bytes = chunks = chunk_bytes = 0
    groups: dict[str, list[int]] = {}
    for c, ch in enumerate(plan.channels):
        if VARIABLES[ch.variable].computed:
            continue
        span = slice(0, 1) if VARIABLES[ch.variable].constant else slice(None)
        mine = plan.file_of[c, span] == fid
        if mine.any():
            names.append(ch.name)
            groups.setdefault(ch.variable, []).append(c)
            times.update(plan.local_time[c, span][mine].tolist())
            field_bytes += int(mine.sum()) * field * 4
    for var, members in groups.items():
        t_chunk, l_chunk, itemsize = f.chunking.get(var, (1, 1, 4))
        c0 = members[0]
        span = slice(0, 1) if VARIABLES[var].constant else slice(None)
        local = plan.local_time[c0, span][plan.file_of[c0, span] == fid]
        n_t = np.unique(local // t_chunk).size
        if plan.channels[c0].level is None:
            n_l, l_chunk = 1, 1
        else:
            n_l = np.unique(np.array([plan.level_index[c, fid] for c in members]) // l_chunk).size
        chunks += n_t * n_l
        chunk_bytes += n_t * n_l * t_chunk * l_chunk * field * itemsize
    return SourceRead(str(f.path), names, len(times), field_bytes, chunks, chunk_bytes)
