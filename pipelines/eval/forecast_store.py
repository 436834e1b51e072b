"""A forecast evaluation written down: predictions.zarr (CF conventions, physical units)
and scores.zarr (RMSE, MSE, wACC per forecaster, lead, channel and region, with the inits
each lead left out and why)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from pipelines.data.channels import parse_channel
from pipelines.data.times import format_lead
from pipelines.data.zarr_store import atomic_store, dims_array
from pipelines.eval.forecast import FORECASTERS, ForecastScores
from pipelines.metrics.weather import REGIONS
from pipelines.run.periods import hour_text


def channel_units(channels: list[str]) -> list[str]:
    return [parse_channel(c).units for c in channels]


def write_predictions(res: ForecastScores, out: Path, attrs: dict) -> None:
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "predictions", "source": res.source, **attrs})
        t = dims_array(g, "init_time", ["init_time"], data=res.init_hours, fill_value=None)
        t.attrs.update({"units": "hours since 1970-01-01", "calendar": "proleptic_gregorian",
                        "standard_name": "forecast_reference_time"})
        dims_array(g, "lead", ["lead"], data=np.array(res.leads), fill_value=None
                   ).attrs.update({"units": "hours", "standard_name": "forecast_period"})
        dims_array(g, "channel", ["channel"], data=np.array(res.channels), fill_value=None)
        dims_array(g, "channel_units", ["channel"], data=np.array(channel_units(res.channels),
                                                                  dtype=object),
                   fill_value=None).attrs["long_name"] = "units of each channel"
        dims_array(g, "lat", ["lat"], data=res.lat, fill_value=None).attrs.update(
            {"units": "degrees_north", "standard_name": "latitude"})
        dims_array(g, "lon", ["lon"], data=res.lon, fill_value=None).attrs.update(
            {"units": "degrees_east", "standard_name": "longitude"})
        p = dims_array(g, "prediction", ["init_time", "lead", "channel", "lat", "lon"],
                       data=res.predictions, chunks=(1, 1, *res.predictions.shape[2:]),
                       fill_value=None)
        p.attrs.update({"long_name": "forecast in physical units (each channel in its own "
                                     "unit: channel_units)",
                        "units_by_channel": dict(zip(res.channels, channel_units(res.channels),
                                                     strict=True)),
                        "coordinates": "channel_units"})


def write_scores(res: ForecastScores, out: Path, attrs: dict) -> None:
    left_out = {format_lead(p.lead): [[hour_text(h), why] for h, why in p.left_out]
                for p in res.plans}
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "scores", "convention": res.convention,
                        "period": res.period, "climatology": res.climatology,
                        "source": res.source,
                        "rollout_leads": [p.lead for p in res.plans if p.rollout],
                        "left_out": left_out, "notes": res.notes, **attrs})
        dims_array(g, "forecaster", ["forecaster"], data=np.array(FORECASTERS),
                   fill_value=None)
        dims_array(g, "lead", ["lead"], data=np.array(res.leads), fill_value=None
                   ).attrs["units"] = "hours"
        dims_array(g, "channel", ["channel"], data=np.array(res.channels), fill_value=None)
        dims_array(g, "region", ["region"], data=np.array(list(REGIONS)), fill_value=None)
        dims_array(g, "n_inits", ["lead"], data=np.array([len(p.inits) for p in res.plans]),
                   fill_value=None).attrs["long_name"] = "init times scored (every forecaster)"
        dims_array(g, "channel_units", ["channel"], data=np.array(
            channel_units(res.channels), dtype=object), fill_value=None)
        for name, values in res.scores.items():
            a = dims_array(g, name, ["forecaster", "lead", "channel", "region"], data=values,
                           fill_value=None)
            a.attrs.update({
                "rmse": {"long_name": "latitude-weighted RMSE", "units": "channel_units"},
                "mse": {"long_name": "latitude-weighted MSE", "units": "channel_units squared"},
                "wacc": {"long_name": "latitude-weighted anomaly correlation", "units": "1"},
            }[name])
            a.attrs["coordinates"] = "channel_units"


def init_time_text(hours: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(hours=int(hours))).strftime("%Y-%m-%d %H:%M")
