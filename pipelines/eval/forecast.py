"""`dchag eval forecast`: a trained forecaster against persistence and climatology.

For each lead, every init time of the period whose valid time is in the artifact is
forecast; predictions are returned to physical units with the *training* normalisation
(recorded in the run), and scored per output channel with `pipelines.metrics.weather`.
Leads the model was not trained for are reached by rolling it out autoregressively with
a trained lead that divides them — only for models that predict their whole input state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr

from pipelines.data.zarr_store import atomic_store, dims_array, open_artifact
from pipelines.errors import DchagError
from pipelines.eval.climatology import StoreClimatology
from pipelines.eval.runs import TrainedRun
from pipelines.metrics.weather import mse, rmse, wacc
from pipelines.progress import NoProgress, Progress
from pipelines.train.config import format_lead

METHODS = ("model", "persistence", "climatology")


@dataclass
class LeadPlan:
    lead: int
    step: int  # the trained lead applied `lead // step` times
    inits: list[int]  # indices of init times in the artifact
    valid: list[int]  # indices of the valid times

    @property
    def rollout(self) -> bool:
        return self.step != self.lead


@dataclass
class ForecastScores:
    leads: list[int]
    channels: list[str]
    init_hours: np.ndarray  # union over leads
    predictions: np.ndarray  # (init, lead, channel, lat, lon), NaN where not forecast
    scores: dict[str, np.ndarray]  # metric → (method, lead, channel)
    plans: list[LeadPlan]
    convention: str
    lat: np.ndarray
    lon: np.ndarray
    notes: list[str] = field(default_factory=list)


def parse_period(text: str | None, hours: np.ndarray) -> np.ndarray:
    """`2018`, `2018:2019` or `2018-01-01:2018-03-31` → a mask over `hours`."""
    if not text:
        return np.ones(hours.shape, bool)
    first, _, last = text.partition(":")
    last = last or first
    try:
        lo = _start(first)
        hi = _end(last)
    except ValueError as exc:
        raise DchagError(f"--period {text!r} is not YEAR, YEAR:YEAR or DATE:DATE") from exc
    t = hours.astype("timedelta64[h]") + np.datetime64("1970-01-01T00", "h")
    return (t >= lo) & (t < hi)


def _start(text: str) -> np.datetime64:
    return np.datetime64(f"{text}-01-01" if len(text) == 4 else text, "h")


def _end(text: str) -> np.datetime64:
    if len(text) == 4:
        return np.datetime64(f"{int(text) + 1}-01-01", "h")
    return np.datetime64(text, "h") + np.timedelta64(24, "h")


def plan_leads(run: TrainedRun, leads: list[int], rollout: bool, times: np.ndarray,
               in_period: np.ndarray) -> list[LeadPlan]:
    trained = sorted(run.cfg.leads)
    full_state = run.out_channels == run.channels
    at = {int(t): i for i, t in enumerate(times)}
    plans = []
    for lead in leads:
        if lead in trained:
            step = lead
        else:
            usable = [s for s in trained if lead % s == 0]
            if not rollout or not usable:
                how = ("pass --rollout" if usable else
                       f"no trained lead ({', '.join(map(format_lead, trained))}) divides it")
                raise DchagError(f"lead {format_lead(lead)} was not trained "
                                 f"({', '.join(map(format_lead, trained))}): {how}",
                                 path=run.path)
            if not full_state:
                raise DchagError(f"lead {format_lead(lead)} needs a rollout, but the model "
                                 f"predicts {len(run.out_channels)} of its "
                                 f"{len(run.channels)} input channels", path=run.path,
                                 fix="train with --out-channels set to every input channel")
            step = max(usable)
        inits = [i for i in np.flatnonzero(in_period) if int(times[i]) + lead in at]
        if not inits:
            raise DchagError(f"no init time in the period has data {format_lead(lead)} later",
                             fix="widen --period or use a shorter --lead")
        plans.append(LeadPlan(lead, step, inits, [at[int(times[i]) + lead] for i in inits]))
    return plans


def check_compatible(run: TrainedRun, group: zarr.Group, data: Path) -> list[int]:
    """Positions of the run's channels in the artifact; refuses another grid or channels."""
    names = [str(n) for n in group.attrs["channels"]]
    missing = [c for c in run.channels if c not in names]
    if missing:
        raise DchagError(f"the run's channels are not all in the data (missing "
                         f"{', '.join(missing[:5])})", path=data,
                         fix="evaluate on an artifact prepared with the run's channels")
    grid = run.info.get("grid")
    if grid is not None and group.attrs.get("grid") != grid:
        raise DchagError(f"grid {group.attrs.get('grid')} differs from the run's {grid}",
                         path=data, fix="prepare the data on the run's grid")
    return [names.index(c) for c in run.channels]


def evaluate_forecast(run: TrainedRun, data: Path, leads: list[int], period: str | None,
                      rollout: bool, convention: str, batch: int, device: torch.device,
                      progress: Progress | None = None) -> ForecastScores:
    progress = progress or NoProgress()
    group = open_artifact(data, "era5")
    index = check_compatible(run, group, data)
    names = [str(n) for n in group.attrs["channels"]]
    out_art = [names.index(c) for c in run.out_channels]
    out_run = [run.channels.index(c) for c in run.out_channels]
    times = np.asarray(group["time"][:], dtype=np.int64)
    in_period = parse_period(period, times)
    if not in_period.any():
        raise DchagError(f"no time of the data falls in --period {period}", path=data)
    plans = plan_leads(run, leads, rollout, times, in_period)
    mean = torch.tensor(run.info["mean"], dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(run.info["std"], dtype=torch.float32, device=device)[:, None, None]
    arr = group["data"]
    clim = StoreClimatology(group, out_art, data)
    lat, lon = group["lat"][:], group["lon"][:]
    all_inits = sorted({i for p in plans for i in p.inits})
    pos = {i: k for k, i in enumerate(all_inits)}
    h, w = arr.shape[2:]
    preds = np.full((len(all_inits), len(plans), len(out_art), h, w), np.nan, np.float32)
    shape = (len(METHODS), len(plans), len(out_art))
    scores = {m: np.full(shape, np.nan) for m in ("rmse", "mse", "wacc")}
    notes = []
    progress.start(sum(len(p.inits) for p in plans), "forecasting")
    for li, plan in enumerate(plans):
        model_out = []
        for s in range(0, len(plan.inits), batch):
            chunk = plan.inits[s:s + batch]
            x = torch.from_numpy(np.stack([arr.get_orthogonal_selection(
                (i, index, slice(None), slice(None))) for i in chunk])).to(device)
            state = (x.float() - mean) / std
            with torch.no_grad():
                for _ in range(plan.lead // plan.step):
                    lead_h = torch.full((len(chunk),), float(plan.step), device=device)
                    state = run.model(state, lead_h)
            model_out.append((state * std[out_run] + mean[out_run]).cpu().numpy())
            progress.advance(len(chunk))
        forecast = np.concatenate(model_out)
        truth = np.stack([arr.get_orthogonal_selection((j, out_art, slice(None), slice(None)))
                          for j in plan.valid]).astype(np.float64)
        persistence = np.stack([arr.get_orthogonal_selection(
            (i, out_art, slice(None), slice(None))) for i in plan.inits]).astype(np.float64)
        climate, _ = clim.at(times[plan.valid])
        if np.isnan(climate).any():
            notes.append(f"{format_lead(plan.lead)}: the artifact's climatology lacks some "
                         "valid days (outside its training years); wACC and the "
                         "climatology forecast skip them")
        for k, i in enumerate(plan.inits):
            preds[pos[i], li] = forecast[k]
        for mi, f in enumerate((forecast, persistence, climate)):
            for c in range(len(out_art)):
                ok = ~np.isnan(climate[:, c]).any(axis=(-2, -1))
                fc, tc, cc = f[ok, c], truth[ok, c], climate[ok, c]
                if not ok.any():
                    continue
                scores["mse"][mi, li, c] = mse(fc, tc, lat)
                scores["rmse"][mi, li, c] = rmse(fc, tc, lat, convention)
                scores["wacc"][mi, li, c] = wacc(fc, tc, cc, lat, convention)
    return ForecastScores([p.lead for p in plans], run.out_channels, times[all_inits], preds,
                          scores, plans, convention, lat, lon, notes)


def write_predictions(res: ForecastScores, out: Path, attrs: dict) -> None:
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "predictions", **attrs})
        dims_array(g, "init_time", ["init_time"], data=res.init_hours, fill_value=None
                   ).attrs["units"] = "hours since 1970-01-01"
        dims_array(g, "lead", ["lead"], data=np.array(res.leads), fill_value=None
                   ).attrs["units"] = "hours"
        dims_array(g, "channel", ["channel"], data=np.array(res.channels), fill_value=None)
        dims_array(g, "lat", ["lat"], data=res.lat, fill_value=None)
        dims_array(g, "lon", ["lon"], data=res.lon, fill_value=None)
        dims_array(g, "prediction", ["init_time", "lead", "channel", "lat", "lon"],
                   data=res.predictions, chunks=(1, 1, *res.predictions.shape[2:]),
                   fill_value=None)


def write_scores(res: ForecastScores, out: Path, attrs: dict) -> None:
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "scores", "convention": res.convention,
                        "rollout_leads": [p.lead for p in res.plans if p.rollout],
                        "notes": res.notes, **attrs})
        dims_array(g, "method", ["method"], data=np.array(METHODS), fill_value=None)
        dims_array(g, "lead", ["lead"], data=np.array(res.leads), fill_value=None)
        dims_array(g, "channel", ["channel"], data=np.array(res.channels), fill_value=None)
        dims_array(g, "n_inits", ["lead"], data=np.array([len(p.inits) for p in res.plans]),
                   fill_value=None)
        for name, values in res.scores.items():
            dims_array(g, name, ["method", "lead", "channel"], data=values, fill_value=None)


def init_time_text(hours: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(hours=int(hours))).strftime("%Y-%m-%d %H:%M")
