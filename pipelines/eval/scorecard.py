"""The scorecard: a run's global RMSE beside the numbers the field knows — persistence,
climatology, IFS T42/T63, the operational IFS and published networks — at the leads they
were published for.

References come from a shipped CSV (`reference_scores.csv`, every row naming its paper and
where the number was read) plus any rows a user adds (`eval forecast --references`).
Numbers made under another protocol are never mixed silently: every row carries its
protocol (climatology kind, regrid method, test years, ERA5 source, ACC convention), and
every way the run's protocol differs from a reference's is listed in the table, the CSV
and on the figure. WeatherBench 1's "Climatology" is one time mean, far weaker than the
run's own day-of-year × hour climatology: its like-for-like partner is the run's
`climatology_time_mean`, scored beside it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.errors import DchagError

REFERENCES = Path(__file__).with_name("reference_scores.csv")
COLUMNS = ("model", "channel", "lead_h", "metric", "value", "model_grid", "test_period",
           "source")
PROTOCOL = ("climatology", "regrid", "era5_source", "acc_convention")  # optional columns
THIS_RUN = "this run"
# scores.zarr's forecasters after the model, and the kind of climatology each one is
MEASURED_BASELINES = ("persistence", "climatology", "climatology_time_mean")
CLIMATOLOGY_KIND = {"climatology": "day of year × hour", "climatology_time_mean": "time mean"}


@dataclass(frozen=True)
class Reference:
    model: str
    channel: str
    lead_h: int
    metric: str
    value: float
    model_grid: str
    test_period: str  # "2017-2018"
    source: str
    climatology: str = ""  # the kind, for a climatology row: "time mean", "weekly", …
    regrid: str = ""  # how the reference's data reached its grid
    era5_source: str = ""
    acc_convention: str = ""


@dataclass(frozen=True)
class RunProtocol:
    """How the run was scored: what a reference's protocol is compared with."""

    init_years: tuple[int, int]
    grid_deg: float
    synthetic: bool
    regrid: str = "bilinear"  # prep era5's --method
    acc_convention: str = "weatherbench2"

    @property
    def era5_source(self) -> str:
        return "synthetic (dchag sample era5)" if self.synthetic else \
            "ERA5, regridded by dchag prep era5"


@dataclass(frozen=True)
class Row:
    """One line of the scorecard: a reference's value, or this run's."""

    model: str
    channel: str
    lead_h: int
    metric: str
    value: float
    source: str
    differs: str  # how this row's protocol differs from the run's ("" if the same)
    protocol: dict[str, str] = field(default_factory=dict)  # PROTOCOL fields, test_years


def load_references(extra: Path | None = None) -> list[Reference]:
    refs = _read(REFERENCES)
    return refs + (_read(extra) if extra is not None else [])


def _read(path: Path) -> list[Reference]:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise DchagError(f"cannot read the reference scores ({exc})", path=path) from exc
    rows = list(csv.DictReader(lines))
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise DchagError(f"reference scores need the columns {', '.join(COLUMNS)}", path=path,
                         fix=f"start from {REFERENCES}")
    out = []
    for k, r in enumerate(rows, 2):
        try:
            out.append(Reference(r["model"], r["channel"], int(r["lead_h"]), r["metric"],
                                 float(r["value"]), r["model_grid"], r["test_period"],
                                 r["source"], *((r.get(c) or "").strip() for c in PROTOCOL)))
        except (TypeError, ValueError) as exc:
            raise DchagError(f"row {k} is not model,channel,lead_h,metric,value,… ({exc})",
                             path=path) from exc
        if not r["source"].strip():
            raise DchagError(f"row {k} ({r['model']}) names no source", path=path,
                             fix="every reference names its paper and table")
        value = out[-1].value
        lo, hi = (-1.0, 1.0) if r["metric"].strip().lower() == "acc" else (0.0, np.inf)
        if not (np.isfinite(value) and lo <= value <= hi):
            raise DchagError(f"row {k} ({r['model']}, {r['channel']} at {r['lead_h']} h) "
                             f"gives {r['metric']} {r['value']}, not a possible score "
                             f"(finite, in [{lo:g}, {hi:g}])", path=path,
                             fix="correct the value from its source")
    return out


def _years(text: str) -> tuple[int, int] | None:
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        return None


def protocol_differences(ref: Reference, run: RunProtocol) -> str:
    """How the run's protocol differs from the reference's, in words ("" if it does not)."""
    diffs = []
    if run.synthetic:
        diffs.append("the run's data is synthetic, not ERA5")
    ref_years = _years(ref.test_period)
    if ref_years is not None and ref_years != run.init_years:
        span = "–".join(dict.fromkeys(map(str, run.init_years)))
        diffs.append(f"test years {span} (reference {ref.test_period})")
    if not np.isclose(run.grid_deg, 5.625):
        diffs.append(f"scored on a {run.grid_deg:g}° grid (WeatherBench: 5.625°)")
    if ref.climatology:
        partner = "climatology_time_mean" if ref.climatology == "time mean" else None
        diffs.append(f"{ref.climatology} climatology, not the run's day of year × hour"
                     + (f" (like for like: this run's {partner})" if partner else ""))
    if ref.regrid and run.regrid.lower() not in ref.regrid.lower():
        diffs.append(f"regridded {run.regrid} (reference: {ref.regrid})")
    if ref.metric != "rmse" and ref.acc_convention and ref.acc_convention != \
            run.acc_convention:
        diffs.append(f"ACC convention {run.acc_convention} (reference: "
                     f"{ref.acc_convention})")
    return "; ".join(diffs)


def build(scores: dict[str, np.ndarray], leads: list[int], channels: list[str],
          init_hours: np.ndarray, lat: np.ndarray, synthetic: bool,
          refs: list[Reference], regrid: str = "bilinear",
          convention: str = "weatherbench2") -> tuple[list[Row], list[str]]:
    """Rows for every (channel, lead, metric) both the run and a reference have, the run's
    first; and the references the run could not be put beside (another lead or channel)."""
    years = tuple(int(str(np.datetime64(int(h), "h"))[:4])
                  for h in (init_hours.min(), init_hours.max()))
    grid = float(abs(lat[1] - lat[0])) if lat.size > 1 else float("nan")
    run = RunProtocol(years, grid, synthetic, regrid, convention)  # type: ignore[arg-type]
    mine = {"regrid": regrid, "era5_source": run.era5_source, "acc_convention": convention,
            "test_years": "-".join(dict.fromkeys(map(str, years)))}
    rows: list[Row] = []
    unmatched: set[str] = set()
    for key in sorted({(r.channel, r.lead_h, r.metric) for r in refs}):
        channel, lead, metric = key
        if channel not in channels or lead not in leads or metric not in scores:
            unmatched.add(f"{channel} at {lead} h")
            continue
        here = scores[metric][:, leads.index(lead), channels.index(channel), 0]
        rows.append(Row(THIS_RUN, channel, lead, metric, float(here[0]), "measured by dchag",
                        "", {**mine, "climatology": ""}))
        for k, name in enumerate(MEASURED_BASELINES[:len(here) - 1], 1):  # the run's inits
            rows.append(Row(f"{name} (this run's period)", channel, lead, metric,
                            float(here[k]), "measured by dchag", "",
                            {**mine, "climatology": CLIMATOLOGY_KIND.get(name, "")}))
        for r in sorted((r for r in refs if (r.channel, r.lead_h, r.metric) == key),
                        key=lambda r: r.value):
            rows.append(Row(r.model, channel, lead, metric, r.value, r.source,
                            protocol_differences(r, run),
                            {"climatology": r.climatology, "regrid": r.regrid,
                             "era5_source": r.era5_source, "acc_convention": r.acc_convention,
                             "test_years": r.test_period}))
    return rows, sorted(unmatched)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["channel", "lead_h", "metric", "model", "value", "same_protocol",
                    "protocol_differs", "source", "test_years", *PROTOCOL])
        for r in rows:
            w.writerow([r.channel, r.lead_h, r.metric, r.model, f"{r.value:.6g}",
                        "yes" if not r.differs else "no", r.differs, r.source,
                        r.protocol.get("test_years", ""),
                        *(r.protocol.get(c, "") for c in PROTOCOL)])
