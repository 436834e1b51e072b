"""Which file provides which channel at which time: the plan `prep era5` executes.

Files may be split by level type (pressure/single level), by variable and by time; the
plan checks that every requested channel exists at every time exactly once, and says
precisely what is missing or duplicated otherwise. A constant field (`lsm`, `orography`)
comes from the first file holding it, at that file's first time (or without time), for
every time of the store; `lat` comes from no file (file index -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.data.channels import VARIABLES, Channel
from pipelines.data.era5_read import Era5File
from pipelines.errors import DchagError


@dataclass
class Era5Plan:
    files: list[Era5File]
    channels: list[Channel]
    times: np.ndarray  # datetime64[ns], sorted, the output time axis
    file_of: np.ndarray  # (C, T) index into files
    local_time: np.ndarray  # (C, T) time index inside that file
    level_index: np.ndarray  # (C, n_files) level index of the channel in each file, -1 if none


def _providers(files: list[Era5File], ch: Channel) -> list[int]:
    out = []
    for i, f in enumerate(files):
        if ch.variable not in f.variables:
            continue
        if ch.level is None or f.level_index(ch.level) is not None:
            out.append(i)
    if out:
        return out
    holders = [f for f in files if ch.variable in f.variables]
    if not holders:
        fix = ("pass ERA5's invariant file (lsm, surface z) with --constants, or drop it "
               "from --channels") if VARIABLES[ch.variable].constant else \
            "add the file that holds it, or drop the channel from --channels"
        raise DchagError(f"no input file has variable {ch.variable!r} (needed for {ch.name})",
                         fix=fix)
    f = holders[0]
    levels = ", ".join(str(int(x)) for x in (f.levels if f.levels is not None else []))
    raise DchagError(f"{ch.variable!r} has no {ch.level} hPa level (levels: {levels})",
                     path=f.path, fix=f"download level {ch.level}, drop {ch.name} from "
                     "--channels, or choose channels these files hold (the shipped sample: "
                     "--preset sample-14; `dchag channels` lists the presets)")


def make_plan(files: list[Era5File], channels: list[Channel],
              period: tuple[int, int] | None = None) -> Era5Plan:
    """Which file, time and level every (channel, time) of the store comes from. With
    `period` ([first, end) in hours since 1970), only those times are planned, so only
    they are read — a decades-long zarr archive costs only the span asked for."""
    level_index = np.full((len(channels), len(files)), -1, dtype=np.int64)
    varying = [c for c in channels if not VARIABLES[c.variable].constant]
    if not varying:
        raise DchagError("only constant fields were asked for (lsm, orography, lat)",
                         fix="add at least one time-varying channel, e.g. t2m")
    per_channel: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for ch in varying:
        c = channels.index(ch)
        t_all, f_all, l_all = [], [], []
        for i in _providers(files, ch):
            f = files[i]
            if ch.level is not None:
                level_index[c, i] = f.level_index(ch.level)
            t_all.append(f.times)
            f_all.append(np.full(f.times.size, i))
            l_all.append(np.arange(f.times.size))
        t = np.concatenate(t_all)
        fi = np.concatenate(f_all)
        li = np.concatenate(l_all)
        if period is not None:
            hours = t.astype("datetime64[h]").astype(np.int64)
            keep = (hours >= period[0]) & (hours < period[1])
            if not keep.any():
                raise DchagError(f"no time of {ch.name} falls in --period",
                                 fix=f"the inputs cover {str(t.min())[:13]} to "
                                 f"{str(t.max())[:13]}")
            t, fi, li = t[keep], fi[keep], li[keep]
        order = np.argsort(t, kind="stable")
        t, fi, li = t[order], fi[order], li[order]
        dup = np.flatnonzero(t[1:] == t[:-1])
        if dup.size:
            a, b = files[fi[dup[0]]].path, files[fi[dup[0] + 1]].path
            where = f"{a.name} and {b.name}" if a != b else a.name
            raise DchagError(f"time {str(t[dup[0]])[:19]} of {ch.name} appears twice ({where}); "
                             f"{dup.size} duplicate time step(s) in all",
                             path=a, fix="pass each time range once")
        per_channel.append((t, fi, li))
    times = per_channel[0][0]
    for ch, (t, _, _) in zip(varying, per_channel, strict=True):
        if t.size != times.size or not np.array_equal(t, times):
            missing = np.setdiff1d(times, t)
            extra = np.setdiff1d(t, times)
            odd = missing if missing.size else extra
            first = varying[0].name
            raise DchagError(f"{ch.name} and {first} cover different times "
                             f"({odd.size} differ, first {str(odd[0])[:19]})",
                             fix="give every variable the same time steps")
    by_name = dict(zip([c.name for c in varying], per_channel, strict=True))
    file_of = np.full((len(channels), times.size), -1, np.int64)
    local = np.zeros((len(channels), times.size), np.int64)
    for c, ch in enumerate(channels):
        if ch.name in by_name:
            file_of[c], local[c] = by_name[ch.name][1], by_name[ch.name][2]
        elif not VARIABLES[ch.variable].computed:
            file_of[c] = _providers(files, ch)[0]  # its first time (or none), every time
    return Era5Plan(files=files, channels=channels, times=times, file_of=file_of,
                    local_time=local, level_index=level_index)
