"""`dchag eval forecast`: a forecast against persistence and climatology, in physical units.

The forecast comes from a trained run (returned to physical units with the run's
*training* normalisation) or from another model's WeatherBench 2 forecast file; truth,
persistence and the climatology come from `era5.zarr` (or a WB2 climatology file).

Which init times are scored, and none silently dropped: by default the run's held-out
test period (else its validation period), `--period` to choose; per lead, the inits of the
period whose valid time is in the data. An init whose valid time has no climatology is
left out of every forecaster's scores alike, and the output lists it with the reason.
Leads a run was not trained for are reached by rolling it out with a trained lead that
divides them — only for models that predict their whole input state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr

from pipelines.data.channels import is_constant
from pipelines.data.forcings import with_forcings
from pipelines.data.grid import LatLonGrid
from pipelines.data.times import format_lead, in_period
from pipelines.data.zarr_store import open_artifact
from pipelines.errors import DchagError
from pipelines.eval.climatology import StoreClimatology
from pipelines.eval.wb2 import WB2Climatology, WB2Forecast
from pipelines.metrics.weather import CLIMAX_BATCH, REGIONS, mse, rmse, wacc
from pipelines.progress import NoProgress, Progress
from pipelines.run.load import TrainedRun, check_compatible, check_droppable
from pipelines.run.periods import Periods, hour_text

# climatology: WeatherBench 2's, per day of year and hour (the strong one, and the one ACC
# is measured against); climatology_time_mean: WeatherBench 1's "Climatology", one mean
# field over the same years, so its published row has a like-for-like partner.
FORECASTERS = ("model", "persistence", "climatology", "climatology_time_mean")


@dataclass
class LeadPlan:
    lead: int
    step: int  # the trained lead applied `lead // step` times
    inits: list[int]  # store indices of the scored init times
    valid: list[int]  # store indices of their valid times
    left_out: list[tuple[int, str]] = field(default_factory=list)  # (init hour, why)
    beyond: int = 0  # inits of the period whose valid time is past the data

    @property
    def rollout(self) -> bool:
        return self.step != self.lead


@dataclass
class ForecastScores:
    leads: list[int]
    channels: list[str]
    init_hours: np.ndarray  # union over leads
    predictions: np.ndarray  # (init, lead, channel, lat, lon), NaN where not forecast
    scores: dict[str, np.ndarray]  # metric → (forecaster, lead, channel, region)
    plans: list[LeadPlan]
    convention: str
    lat: np.ndarray
    lon: np.ndarray
    period: str  # what was scored, in words
    climatology: str
    source: str
    notes: list[str] = field(default_factory=list)


class RunSource:
    """Forecasts of a trained run."""

    def __init__(self, run: TrainedRun, device: torch.device, drop: list[str] | None = None):
        self.run, self.device = run, device
        self.channels = run.out_channels
        self.name = f"run {run.path}"
        self.drop = check_droppable(run, drop or [])
        self.keep: torch.Tensor | None = None  # the inputs shown to the model (None: all)
        if self.drop:  # the absent inputs are never shown to the model, at any step
            self.name += f" without {', '.join(self.drop)}"
            gone = {run.channels.index(c) for c in self.drop}
            n_inputs = len(run.channels) + len(run.forcings)
            self.keep = torch.tensor([i for i in range(n_inputs) if i not in gone],
                                     device=device)
        self.index: list[int] = []  # positions of the run's input channels in the store
        self.lat = self.lon = np.zeros(0)  # the grid, once bound to a store

    def bind(self, group: zarr.Group, data: Path) -> None:
        self.index = check_compatible(self.run, group, data)
        self.lat = np.asarray(group["lat"][:], np.float64)
        self.lon = np.asarray(group["lon"][:], np.float64)

    def default_period(self) -> tuple[str | None, str]:
        periods = self.run.info.get("periods")
        if not periods:
            return None, ("all times (this run records no held-out period, so training "
                          "times are scored too)")
        p = Periods.from_dict(periods)
        for name, words in (("test", "test"), ("val", "validation")):
            bounds = getattr(p, name)
            if bounds:
                return (f"{hour_text(bounds[0])}:{hour_text(bounds[1])}",
                        f"the run's {words} period {p.describe(name)} (held out from training)")
        return None, "all times (the run holds out no period)"

    def periods(self) -> Periods | None:
        periods = self.run.info.get("periods")
        return Periods.from_dict(periods) if periods else None

    def steps(self, lead: int, rollout: bool) -> int:
        trained = sorted(self.run.cfg.leads)
        if lead in trained:
            return lead
        names = ", ".join(map(format_lead, trained))
        usable = [s for s in trained if lead % s == 0]
        if not usable:
            raise DchagError(f"lead {format_lead(lead)} was not trained ({names}) and no "
                             "trained lead divides it", path=self.run.path,
                             fix=f"train with --lead including {format_lead(lead)}")
        unpredicted = [c for c in self.run.channels if c not in self.run.out_channels]
        if any(not is_constant(c) for c in unpredicted):  # constant fields stay as they are
            raise DchagError(f"lead {format_lead(lead)} was not trained ({names}); rolling "
                             f"out needs a model predicting its whole input, this one "
                             f"predicts {len(self.run.out_channels)} of its "
                             f"{len(self.run.channels)} input channels", path=self.run.path,
                             fix=f"train with --lead including {format_lead(lead)}, or with "
                             "--out-channels all to allow --rollout")
        if not rollout:
            raise DchagError(f"lead {format_lead(lead)} was not trained ({names})",
                             path=self.run.path, fix=f"pass --rollout to reach it in "
                             f"{lead // max(usable)} steps of {format_lead(max(usable))}")
        return max(usable)

    def forecast(self, plan: LeadPlan, chunk: list[int], arr: zarr.Array, times: np.ndarray
                 ) -> np.ndarray:
        run, dev, index = self.run, self.device, self.index
        mean = torch.tensor(run.info["mean"], dtype=torch.float32, device=dev)[:, None, None]
        std = torch.tensor(run.info["std"], dtype=torch.float32, device=dev)[:, None, None]
        out_run = [run.channels.index(c) for c in run.out_channels]
        x = torch.from_numpy(np.stack([arr.get_orthogonal_selection(
            (i, index, slice(None), slice(None))) for i in chunk])).to(dev)
        state = (x.float() - mean) / std
        t0 = torch.from_numpy(times[chunk].astype(np.int64))
        step = torch.full((len(chunk),), float(plan.step), device=dev)
        keep = self.keep
        with torch.no_grad():
            for k in range(plan.lead // plan.step):
                inputs = with_forcings(state, t0 + k * plan.step, step, self.lat, self.lon) \
                    if run.forcings else state
                present = inputs if keep is None else inputs[:, keep]
                state[:, out_run] = run.model(present, step, keep)  # constants carry over
        return (state[:, out_run] * std[out_run] + mean[out_run]).cpu().numpy()


class WB2Source:
    """Another model's forecasts from a WeatherBench 2 file."""

    def __init__(self, forecast: WB2Forecast):
        self.wb2 = forecast
        self.channels = forecast.channels
        self.name = f"forecast {forecast.path}"

    def bind(self, group: zarr.Group, data: Path) -> None:
        """The file was opened against this store's channels and grid already."""

    def default_period(self) -> tuple[str | None, str]:
        return None, "every init time of the forecast file"

    def periods(self) -> Periods | None:
        """The periods of the dchag run the file was exported from, where it is at hand
        (another model's training period is unknown: None)."""
        if self.wb2.run is None:
            return None
        try:
            info = json.loads((Path(self.wb2.run) / "model.json").read_text())
        except (OSError, ValueError):
            return None
        return Periods.from_dict(info["periods"]) if info.get("periods") else None

    def steps(self, lead: int, rollout: bool) -> int:
        if lead not in self.wb2.leads:
            raise DchagError(f"lead {format_lead(lead)} is not in the forecast file (it has "
                             f"{', '.join(map(format_lead, self.wb2.leads))})",
                             path=self.wb2.path)
        return lead

    def forecast(self, plan: LeadPlan, chunk: list[int], arr: zarr.Array, times: np.ndarray
                 ) -> np.ndarray:
        return self.wb2.fields_at(plan.lead, [int(times[i]) for i in chunk])


def evaluate_forecast(source: RunSource | WB2Source, data: Path, leads: list[int],
                      period: str | None, rollout: bool, convention: str, batch: int,
                      climatology: Path | None = None, climax_batch: int = CLIMAX_BATCH,
                      progress: Progress | None = None,
                      climates: dict | None = None) -> ForecastScores:
    """`climates`: store climatologies made by earlier calls on the same data, reused
    (several evaluations of one run, such as `--robustness`, share one: removing the
    held-out times and smoothing again is most of an evaluation's work on a small grid)."""
    progress = progress or NoProgress()
    group = open_artifact(data, "era5")
    names = [str(n) for n in group.attrs["channels"]]
    source.bind(group, data)
    out_art = [names.index(c) for c in source.channels]
    times = np.asarray(group["time"][:], dtype=np.int64)
    lat, lon = group["lat"][:], group["lon"][:]
    if period is None:
        period, words = source.default_period()
    else:
        words = f"--period {period}"
    chosen = in_period(period, times) if period else np.ones(times.shape, bool)
    if isinstance(source, WB2Source):
        chosen &= np.isin(times, source.wb2.init_hours)
    if not chosen.any():
        raise DchagError(f"no init time of the data falls in {words}", path=data,
                         fix="choose a --period inside the data")
    # A run's training period rules the climatology (it must not see held-out times) and
    # is named when scored; unknown for another model's file: the store's whole record.
    periods = source.periods()
    training = None if periods is None else periods.contains("train", times)
    clim = WB2Climatology(climatology, source.channels, LatLonGrid(lat, lon)) \
        if climatology else _store_climatology(group, out_art, data, None if training is None
                                               else times[~training], climates)
    extra_notes = []
    if training is not None and training[chosen].any():
        extra_notes.append(f"{int(training[chosen].sum())} scored init time(s) lie in the "
                           "run's training period: those scores are not held out")
    plans = [_plan(source.steps(lead, rollout), lead, times, chosen, clim) for lead in leads]
    if not any(p.inits for p in plans):
        why = "; ".join(_notes(plans)) or "no init time to score"
        raise DchagError(f"nothing to score in {words}: {why}", path=data,
                         fix="choose a --period with data a lead ahead, or shorter --lead")
    arr = group["data"]
    all_inits = sorted({i for p in plans for i in p.inits})
    pos = {i: k for k, i in enumerate(all_inits)}
    h, w = arr.shape[2:]
    preds = np.full((len(all_inits), len(plans), len(out_art), h, w), np.nan, np.float32)
    shape = (len(FORECASTERS), len(plans), len(out_art), len(REGIONS))
    scores = {m: np.full(shape, np.nan) for m in ("rmse", "mse", "wacc")}
    period_mean = _period_mean(arr, times, chosen, out_art) if convention == "climax" \
        else None
    time_mean = clim.time_mean()
    progress.start(sum(len(p.inits) for p in plans), "forecasting")
    for li, plan in enumerate(plans):
        model_out = []
        for s in range(0, len(plan.inits), batch):
            chunk = plan.inits[s:s + batch]
            model_out.append(source.forecast(plan, chunk, arr, times))
            progress.advance(len(chunk))
        if not plan.inits:
            continue
        forecast = np.concatenate(model_out).astype(np.float64)
        truth = _fields(arr, plan.valid, out_art)
        persistence = _fields(arr, plan.inits, out_art)
        climate, _ = clim.at(times[plan.valid])
        for k, i in enumerate(plan.inits):
            preds[pos[i], li] = forecast[k]
        flat = np.broadcast_to(time_mean, truth.shape)
        for fi, f in enumerate((forecast, persistence, climate, flat)):
            for c in range(len(out_art)):
                for ri, region in enumerate(REGIONS):
                    scores["mse"][fi, li, c, ri] = mse(f[:, c], truth[:, c], lat, region)
                    scores["rmse"][fi, li, c, ri] = rmse(f[:, c], truth[:, c], lat,
                                                         convention, region)
                    if fi < 2:
                        scores["wacc"][fi, li, c, ri] = wacc(
                            f[:, c], truth[:, c], climate[:, c], lat, convention, region,
                            None if period_mean is None else period_mean[c], climax_batch)
    notes = extra_notes + _notes(plans)
    return ForecastScores([p.lead for p in plans], list(source.channels),
                          times[all_inits], preds, scores, plans, convention, lat, lon,
                          words, clim.description, source.name, notes)


def _store_climatology(group: zarr.Group, out_art: list[int], data: Path,
                       exclude: np.ndarray | None, climates: dict | None) -> StoreClimatology:
    key = (str(data), tuple(out_art), None if exclude is None else exclude.tobytes())
    if climates is not None and key in climates:
        return climates[key]
    clim = StoreClimatology(group, out_art, data, exclude)
    if climates is not None:
        climates[key] = clim
    return clim


def _plan(step: int, lead: int, times: np.ndarray, chosen: np.ndarray, clim) -> LeadPlan:
    at = {int(t): i for i, t in enumerate(times)}
    candidates = [int(i) for i in np.flatnonzero(chosen)]
    reach = [i for i in candidates if int(times[i]) + lead in at]
    plan = LeadPlan(lead, step, [], [], beyond=len(candidates) - len(reach))
    if not reach:
        return plan
    valid = [at[int(times[i]) + lead] for i in reach]
    _, ok = clim.at(times[valid])
    for i, j, good in zip(reach, valid, ok, strict=True):
        if good:
            plan.inits.append(i)
            plan.valid.append(j)
        else:
            plan.left_out.append((int(times[i]), f"no climatology for valid time "
                                  f"{hour_text(int(times[j]))}"))
    return plan


def _notes(plans: list[LeadPlan]) -> list[str]:
    notes = []
    for p in plans:
        if p.left_out:
            first = ", ".join(hour_text(h) for h, _ in p.left_out[:3])
            notes.append(f"lead {format_lead(p.lead)}: {len(p.left_out)} init(s) left out of "
                         f"every score ({p.left_out[0][1]}; e.g. {first})")
        if p.beyond:
            notes.append(f"lead {format_lead(p.lead)}: {p.beyond} init(s) of the period have "
                         "no truth that far ahead (the data ends) and cannot be scored")
        if not p.inits:
            notes.append(f"lead {format_lead(p.lead)}: nothing to score")
    return notes


def _fields(arr: zarr.Array, rows: list[int], channels: list[int]) -> np.ndarray:
    return np.stack([arr.get_orthogonal_selection((j, channels, slice(None), slice(None)))
                     for j in rows]).astype(np.float64)


def _period_mean(arr: zarr.Array, times: np.ndarray, chosen: np.ndarray,
                 channels: list[int]) -> np.ndarray:
    """ClimaX's reference for ACC: the evaluated period's mean field per channel."""
    rows = np.flatnonzero(chosen)
    total = np.zeros((len(channels), *arr.shape[2:]))
    for j in rows:
        total += arr.get_orthogonal_selection((int(j), channels, slice(None), slice(None)))
    return total / len(rows)
