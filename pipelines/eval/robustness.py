"""`eval forecast --robustness`: the run's skill with each single input channel missing,
and each channel group (D-CHAG's unit of work) missing — what a user loses when an
instrument or a variable is absent at inference. Each case is the ordinary evaluation
with `--drop-channels`, scored on the same inits against the same truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.data.zarr_store import atomic_store, dims_array
from pipelines.eval.forecast import ForecastScores, RunSource, evaluate_forecast
from pipelines.progress import Progress


@dataclass
class Robustness:
    missing: list[str]  # "none", then each channel, then each group
    dropped: list[list[str]]
    leads: list[int]
    channels: list[str]  # scored (output) channels
    rmse: np.ndarray  # (missing, lead, channel), global
    period: str

    @property
    def ratio(self) -> np.ndarray:
        """RMSE with the inputs missing / with every input."""
        return self.rmse / self.rmse[:1]

    def worst(self) -> tuple[str, float]:
        """The single missing channel that hurts most (mean ratio over leads and outputs)."""
        singles = [k for k, m in enumerate(self.missing) if len(self.dropped[k]) == 1]
        means = [float(np.nanmean(self.ratio[k])) for k in singles]
        k = singles[int(np.argmax(means))]
        return self.missing[k], max(means)


def drop_sets(source: RunSource) -> list[tuple[str, list[str]]]:
    """("none", []), each input channel alone, then each group's data channels."""
    run = source.run
    sets: list[tuple[str, list[str]]] = [("none", [])]
    sets += [(c, [c]) for c in run.channels]
    agg = getattr(run.model.encoder, "aggregator", None)
    if run.model.cfg.variant != "baseline" and agg is not None:
        for g in range(agg.n_groups):
            lo, hi = agg.group_channels(g)
            members = [run.channels[i] for i in range(lo, hi) if i < len(run.channels)]
            if len(members) > 1 and len(members) < len(run.channels):
                sets.append((f"group {g}: {','.join(members)}", members))
    return sets


def evaluate_robustness(source: RunSource, data: Path, leads: list[int], period: str | None,
                        convention: str, batch: int, progress: Progress | None = None,
                        on_case=None, full: ForecastScores | None = None) -> Robustness:
    """`full`: the same evaluation with every input, when already made (not made again)."""
    sets = drop_sets(source)
    rmse, period_words = [], ""
    climates: dict = {}  # one climatology for every case: the scored channels are the same
    for label, drop in sets:
        res = full if not drop and full is not None else evaluate_forecast(
            RunSource(source.run, source.device, drop), data, leads, period, False,
            convention, batch, progress=progress, climates=climates)
        rmse.append(res.scores["rmse"][0, :, :, 0])  # model, every lead and channel, global
        period_words = res.period
        if on_case:
            on_case(label)
    return Robustness([s[0] for s in sets], [s[1] for s in sets], leads, source.channels,
                      np.stack(rmse), period_words)


def write_robustness(r: Robustness, out: Path, attrs: dict) -> None:
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "robustness", "period": r.period,
                        "what": "global RMSE of the model with the inputs of `missing` "
                                "absent (channel_ids without them), and its ratio to the "
                                "RMSE with every input", **attrs})
        dims_array(g, "missing", ["missing"], data=np.array(r.missing), fill_value=None)
        dims_array(g, "lead", ["lead"], data=np.array(r.leads), fill_value=None
                   ).attrs["units"] = "hours"
        dims_array(g, "channel", ["channel"], data=np.array(r.channels), fill_value=None)
        for name, values in (("rmse", r.rmse), ("rmse_ratio", r.ratio)):
            dims_array(g, name, ["missing", "lead", "channel"], data=values, fill_value=None)
