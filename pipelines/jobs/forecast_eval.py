"""`dchag eval forecast` as one library call: choose what makes the forecasts (a run or
another model's WeatherBench 2 file), score it beside persistence and climatology, and
write predictions, scores, figures, the scorecard and (optionally) the robustness to
missing inputs — all staged, so a failure leaves no half-filled folder."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.data.zarr_store import open_artifact
from pipelines.errors import DchagError
from pipelines.eval import scorecard
from pipelines.eval.forecast import (
    ForecastScores,
    RunSource,
    WB2Source,
    evaluate_forecast,
)
from pipelines.eval.forecast_store import write_predictions, write_scores
from pipelines.guard import output_folder
from pipelines.metrics.weather import CLIMAX_BATCH, CONVENTIONS
from pipelines.progress import NoProgress, Progress
from pipelines.provenance import provenance


@dataclass
class ForecastJob:
    data: Path
    run: Path | None = None  # a run folder or its model file
    forecast_file: Path | None = None  # or another model's forecast (WB2 layout)
    leads: list[int] | None = None  # hours; None: the run's (or the file's) leads
    period: str | None = None  # None: the run's held-out test period
    rollout: bool = False
    convention: str = "weatherbench2"
    batch: int = 16
    climatology: Path | None = None
    climax_batch: int = CLIMAX_BATCH
    map_channel: str | None = None
    out_dir: Path | None = None  # None: `default_out`
    drop: list[str] = field(default_factory=list)
    robustness: bool = False
    references: Path | None = None
    overwrite: bool = False

    def check(self) -> None:
        """What can be refused before any model is loaded."""
        from pipelines.data.times import period_hours

        if (self.run is None) == (self.forecast_file is None):
            raise DchagError("score either a run or a forecast file",
                             fix="pass --run RUN or --forecast FILE (one of them)")
        if self.convention not in CONVENTIONS:
            raise DchagError(f"--convention {self.convention!r}",
                             fix=f"choose {', '.join(CONVENTIONS)}")
        if self.batch < 1 or self.climax_batch < 1:
            raise DchagError("--batch and --climax-batch must be at least 1")
        if self.period is not None:
            period_hours(self.period)
        if (self.drop or self.robustness) and self.forecast_file is not None:
            raise DchagError("--drop-channels and --robustness need a run (--run), not a "
                             "forecast file", fix="score the run that made the forecast")


@dataclass
class ForecastOutcome:
    res: ForecastScores
    out_dir: Path
    written: list[str]  # names inside out_dir
    rows: list  # scorecard rows (empty: no published score at these leads)
    unmatched: list
    robust: Any = None  # robustness.Robustness with --robustness


def default_out(source: Path) -> Path:
    """Results go inside a run folder, and beside a file (a model file or a forecast
    store given as a file) — never into a folder at a file's path."""
    if source.is_dir() and source.suffix != ".zarr":
        return source / "eval"
    return source.with_name(source.name.split(".")[0] + "_eval")


def forecast_source(job: ForecastJob, device: torch.device) -> RunSource | WB2Source:
    """What makes the forecasts: a trained run, or another model's WB2 file read against
    the store's channels and grid."""
    if job.run is not None:
        from pipelines.run.load import load_run

        return RunSource(load_run(job.run, "forecast", device), device, job.drop)
    from pipelines.data.grid import LatLonGrid
    from pipelines.eval.wb2 import WB2Forecast

    group = open_artifact(job.data, "era5")
    names = [str(n) for n in group.attrs["channels"]]
    return WB2Source(WB2Forecast(job.forecast_file, names,
                                 LatLonGrid(group["lat"][:], group["lon"][:])))


def _first_truth(data: Path, res: ForecastScores, channel: str) -> tuple[np.ndarray, int, int]:
    """The observed field for the map — the first scored init of the first lead with any —
    and that init's and lead's positions in the predictions."""
    group = open_artifact(data, "era5")
    names = [str(n) for n in group.attrs["channels"]]
    lead_pos = next(i for i, p in enumerate(res.plans) if p.inits)
    plan = res.plans[lead_pos]
    pos = int(np.flatnonzero(res.init_hours == group["time"][plan.inits[0]])[0])
    return group["data"][plan.valid[0], names.index(channel)], pos, lead_pos


def _attrs(job: ForecastJob, leads: list[int], source) -> dict:
    attrs = {"provenance": provenance("eval forecast", {
        "leads": leads, "period": job.period, "rollout": job.rollout,
        "convention": job.convention, "climax_batch": job.climax_batch,
        "climatology": str(job.climatology) if job.climatology else None,
        "drop_channels": job.drop}, [p for p in (job.data, job.forecast_file,
                                                 job.climatology) if p], seed=None),
        "dropped_channels": job.drop}
    if job.run is not None:
        attrs.update(run=str(job.run.resolve()), checkpoint_step=source.run.step)
    return attrs


Progressing = Callable[[], contextlib.AbstractContextManager[Progress]]


def run_forecast_job(job: ForecastJob, device: torch.device,
                     progress: Progressing = lambda: contextlib.nullcontext(NoProgress()),
                     on_robust_case: Callable[[str], None] | None = None
                     ) -> ForecastOutcome:
    from pipelines.plots.forecast import plot_maps, plot_scores_vs_lead
    from pipelines.run.load import run_files

    job.check()
    source = forecast_source(job, device)
    leads = job.leads or (sorted(source.run.cfg.leads) if isinstance(source, RunSource)
                          else sorted(source.wb2.leads))
    if job.map_channel is not None and job.map_channel not in source.channels:
        raise DchagError(f"--map-channel {job.map_channel} is not a forecast channel",
                         fix=f"choose from {', '.join(source.channels)}")
    channel = job.map_channel or source.channels[0]
    out_dir = job.out_dir or default_out(job.run or job.forecast_file)
    inputs = [*run_files(job.run)] if job.run is not None else [job.forecast_file]
    inputs += [job.data] + ([job.climatology] if job.climatology else [])
    items = {"predictions.zarr": "predictions", "scores.zarr": "scores",
             f"map_{channel}.png": None, "scores_vs_lead.png": None}
    refs = scorecard.load_references(job.references)
    if any(r.channel in source.channels and r.lead_h in leads for r in refs):
        items |= {"scorecard.csv": None, "scorecard.png": None}
    if job.robustness:
        items |= {"robustness.zarr": "robustness", "robustness.png": None}
    with output_folder(out_dir, items, job.overwrite, inputs) as stage:
        with progress() as bar:
            res = evaluate_forecast(source, job.data, leads, job.period, job.rollout,
                                    job.convention, job.batch, job.climatology,
                                    job.climax_batch, bar)
        attrs = _attrs(job, leads, source)
        write_predictions(res, stage / "predictions.zarr", attrs)
        write_scores(res, stage / "scores.zarr", attrs)
        truth, init_pos, lead_pos = _first_truth(job.data, res, channel)
        plot_maps(res, truth, channel, init_pos, lead_pos, stage / f"map_{channel}.png")
        plot_scores_vs_lead(res, stage / "scores_vs_lead.png")
        store = open_artifact(job.data, "era5").attrs
        rows, unmatched = scorecard.build(
            res.scores, res.leads, res.channels, res.init_hours, res.lat,
            bool(store.get("synthetic", False)), refs,
            regrid=(store.get("regrid") or {}).get("method", "unknown"),
            convention=job.convention)
        if rows:
            from pipelines.plots.scorecard import plot_scorecard

            scorecard.write_csv(rows, stage / "scorecard.csv")
            plot_scorecard(rows, stage / "scorecard.png")
        robust = _robustness(job, source, leads, stage, attrs, progress, on_robust_case,
                             None if job.drop else res) if job.robustness else None
    return ForecastOutcome(res, out_dir, list(items), rows, unmatched, robust)


def _robustness(job: ForecastJob, source, leads: list[int], stage: Path, attrs: dict,
                progress: Progressing, on_case, full: ForecastScores | None):
    from pipelines.eval.robustness import evaluate_robustness, write_robustness
    from pipelines.plots.robustness import plot_robustness

    with progress() as bar:
        robust = evaluate_robustness(source, job.data, leads, job.period, job.convention,
                                     job.batch, bar, on_case=on_case, full=full)
    write_robustness(robust, stage / "robustness.zarr", attrs)
    plot_robustness(robust, stage / "robustness.png")
    return robust
