"""`parity.zarr`: per-seed metrics, paired ratios and their intervals, one group per task."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.bench.parity import ParityTable, bootstrap_mean_interval, few_seeds_note
from pipelines.data.zarr_store import atomic_store, dims_array
from pipelines.provenance import provenance


def write_parity(tables: list[ParityTable], out: Path, settings: dict) -> None:
    """Arrays `<task>_metric`, `<task>_val_loss`, `<task>_ratio` over (variant, seed);
    over variant `<task>_ratio_mean`, `_ratio_lo`, `_ratio_hi` (bootstrap), `_seed_cv`,
    and the paired t-analysis `_geo_ratio`, `_t_lo`, `_t_hi`, `_upper_95`,
    `_loss_below_1pct`."""
    summaries = {t.task: t.summary() for t in tables}
    with atomic_store(out) as g:
        g.attrs.update({"dchag_artifact": "parity", "reference": tables[0].variants[0],
                        "metrics": {t.task: t.metric for t in tables},
                        "interval": "bootstrap 95 % percentile interval of the mean paired "
                                    "ratio, resampling seeds (ratio_lo/hi); paired t-interval "
                                    "of the mean log-ratio (t_lo/hi)",
                        "test": "one-sided paired t on log-ratios, H0: geometric-mean ratio "
                                ">= 1.01; upper_95 < 1.01 passes",
                        "note": few_seeds_note(len(tables[0].seeds)),
                        "summary": [row for rows in summaries.values() for row in rows],
                        "provenance": provenance("bench parity", settings, [], seed=None)})
        dims_array(g, "variant", ["variant"], data=np.array(tables[0].variants),
                   fill_value=None)
        dims_array(g, "seed", ["seed"], data=np.array(tables[0].seeds), fill_value=None)
        for t in tables:
            for name, values in (("metric", t.values), ("val_loss", t.val_loss),
                                 ("ratio", t.ratios())):
                a = dims_array(g, f"{t.task}_{name}", ["variant", "seed"], data=values,
                               fill_value=None)
                a.attrs["long_name"] = {"metric": t.metric, "val_loss": "final validation "
                                        "loss", "ratio": f"metric / {t.variants[0]}'s, "
                                        "same seed"}[name]
            rows = summaries[t.task]
            for key in ("ratio_mean", "ratio_lo", "ratio_hi", "seed_cv", "geo_ratio", "t_lo",
                        "t_hi", "upper_95", "loss_below_1pct"):
                dims_array(g, f"{t.task}_{key}", ["variant"],
                           data=np.array([r[key] for r in rows]), fill_value=None)
            lo_hi = [bootstrap_mean_interval(v) for v in t.val_loss / t.val_loss[0:1]]
            dims_array(g, f"{t.task}_val_loss_ratio_interval", ["variant", "bound"],
                       data=np.array(lo_hi), fill_value=None)
            if "model_rmse" in t.detail:
                dims_array(g, f"{t.task}_model_rmse", ["variant", "seed", "lead", "channel"],
                           data=t.detail["model_rmse"], fill_value=None)
