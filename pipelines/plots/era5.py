"""`dchag show era5.zarr`: maps of chosen channels at one time, and per-channel statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipelines.data.channels import pretty_units
from pipelines.data.times import EPOCH
from pipelines.data.zarr_store import open_artifact
from pipelines.errors import DchagError
from pipelines.figures import save_figure
from pipelines.plots.forecast import map_axes


@dataclass
class ChannelStats:
    channel: str
    units: str
    mean: float  # the store's normalisation statistics (training years)
    std: float
    minimum: float  # of the time shown
    maximum: float


def _times(g, store: Path) -> np.ndarray:
    if not g["time"].attrs.get("units", "").startswith("hours since 1970-01-01"):
        raise DchagError("time is not stored in hours since 1970", path=store)
    hours = np.asarray(g["time"][:], dtype=np.int64)
    return EPOCH + hours.astype("timedelta64[h]")


def pick_time(times: np.ndarray, when: str | None, store: Path) -> int:
    """Index of `when` (`2018-01-03T12`, or a date meaning its first time); default: the
    first time of the store."""
    if when is None:
        return 0
    try:
        exact = np.datetime64(when.strip())
        wanted = exact.astype("datetime64[h]")
    except ValueError as exc:
        raise DchagError(f"--time {when!r} is not a time", fix="write e.g. 2018-01-03T12"
                         ) from exc
    if exact != wanted:
        raise DchagError(f"--time {when}: the store holds whole hours",
                         fix=f"write e.g. {wanted!s}")
    if "T" in when:  # an hour was named: it must be one of the store's times
        at = np.flatnonzero(times == wanted)
        if at.size:
            return int(at[0])
        near = times[np.argsort(np.abs(times - wanted))[:2]]
        raise DchagError(f"--time {when} is not one of the store's times", path=store,
                         fix=f"the nearest are {', '.join(sorted(str(t) for t in near))}")
    hits = np.flatnonzero(times >= wanted)
    if not hits.size or times[hits[0]] - wanted >= np.timedelta64(24, "h"):
        raise DchagError(f"--time {when} is not in the store", path=store,
                         fix=f"it covers {times[0]} to {times[-1]}")
    return int(hits[0])


def show_era5(store: Path, channels: list[str] | None, when: str | None, out: Path
              ) -> tuple[Path, list[ChannelStats], str]:
    g = open_artifact(store, "era5")
    times = _times(g, store)
    names = [str(c) for c in g["channel"][:]]
    chosen = channels or names[:4]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise DchagError(f"no channel {', '.join(unknown)} in the store", path=store,
                         fix=f"choose from {', '.join(names)}")
    t = pick_time(times, when, store)
    stamp = f"{times[t]} UTC"
    units = dict(g["data"].attrs.get("units_by_channel", {}))
    lat, lon = np.asarray(g["lat"][:]), np.asarray(g["lon"][:])
    field = np.asarray(g["data"][t])  # (channel, lat, lon): one time step is one chunk
    stats = []
    cols = min(2, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 3.2 * rows), dpi=110,
                             layout="constrained", squeeze=False)
    for ax in axes.flat[len(chosen):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, chosen, strict=False):
        c = names.index(name)
        values = field[c]
        extent = map_axes(ax, lat, lon)
        winds = name.startswith(("u", "v"))  # signed: white at zero
        lim = float(np.nanmax(np.abs(values))) or 1.0
        kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim} if winds else {"cmap": "viridis"}
        im = ax.imshow(values, origin="lower", extent=extent, aspect="equal", **kw)
        ax.set_title(name)
        fig.colorbar(im, ax=ax, shrink=0.85, label=pretty_units(units.get(name, "")))
        stats.append(ChannelStats(name, units.get(name, ""), float(g["mean"][c]),
                                  float(g["std"][c]), float(np.nanmin(values)),
                                  float(np.nanmax(values))))
    fig.suptitle(f"{store.name}: {stamp}")
    return save_figure(fig, out), stats, stamp
