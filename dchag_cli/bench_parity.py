"""`dchag bench parity`: D-CHAG's quality against the baseline, over seeds.

Every run is the ordinary command with the quickstart's recipe (`recipes.py`), echoed
before it runs, so any number in `parity.zarr` can be reproduced by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import typer

from dchag_cli import recipes
from dchag_cli.console import out, user_errors
from pipelines.bench.parity import few_seeds_note, forecast_metric, last_val_loss
from pipelines.errors import DchagError

TASKS = ("forecast", "mae")
METRICS = {
    "forecast": "mean over leads and channels of model RMSE / persistence RMSE (global, "
                "held-out test period)",
    "mae": "masked-pixel RMSE on the held-out cubes (reflectance)",
}


def _run(ctx: typer.Context, args: list[str]) -> None:
    recipes.run_command(ctx, args, "parity", "a parity run failed")


def _one(ctx: typer.Context, task: str, data: str, work: Path, variant: str, seed: int, steps: int,
         leads: str) -> tuple:
    run = work / f"{task}-{variant}-s{seed}"
    if run.exists():
        shutil.rmtree(run)
    if task == "forecast":
        _run(ctx, recipes.train_forecast(data, str(run), steps, 1, variant, seed, leads))
        _run(ctx, ["eval", "forecast", "--run", str(run), "--data", data])
        metric, detail = forecast_metric(run / "eval" / "scores.zarr")
        return metric, last_val_loss(run), detail
    from pipelines.eval.mask_store import read_mask_scores

    _run(ctx, recipes.pretrain_mae(data, str(run), steps, 1, variant, seed))
    for args in recipes.score_masks(data, str(run)):
        _run(ctx, args)
    return read_mask_scores(run / "mask_scores.zarr")["model"], last_val_loss(run), None


@user_errors
def parity(
    ctx: typer.Context,
    seeds: int = typer.Option(5, help="Seeds per variant (paired across variants); fewer "
                              "than 5 come with a note that the intervals are not 95 %."),
    variants: str = typer.Option("baseline,L,C", help="Variants; the first is the "
                                 "reference every ratio is taken against. A channel stage "
                                 "may follow a dash: baseline-folded."),
    tasks: str = typer.Option("forecast,mae", help="forecast (ERA5 sample), mae "
                              "(hyperspectral sample), or both."),
    era5: Path = typer.Option(None, help="era5.zarr to forecast on.",
                              show_default="the quickstart's synthetic record, made in --work"),
    appl: Path = typer.Option(None, help="appl.zarr to pretrain on.",
                              show_default="the shipped cubes, prepared in --work"),
    forecast_steps: int = typer.Option(recipes.FORECAST_STEPS, help="Steps per forecaster."),
    lead: str = typer.Option(recipes.LEADS, help="Forecast leads trained and scored."),
    mae_steps: int = typer.Option(recipes.MAE_STEPS, help="Steps per MAE."),
    work: Path = typer.Option(Path("parity_runs"), help="Folder for the runs (kept)."),
    out_path: Path = typer.Option(Path("parity.zarr"), "--out", "-o",
                                  help="Results (zarr) and, beside it, a PNG."),
) -> None:
    """Train baseline, D-CHAG-L and D-CHAG-C on the same data, steps and seeds, and
    test the paper's "<1 % quality loss" as paired ratios against the baseline: a paired
    t-interval of the mean log-ratio, a one-sided test (pass when the 95 % upper bound is
    below 1.01), and the bootstrap interval beside the seed-to-seed spread.

    Each run is one process (the quickstart's recipe, one rank), trained, then scored on
    held-out data: forecasting on the test period (model RMSE / persistence RMSE, mean
    over leads and channels), MAE on the held-out cubes × 5 mask draws (masked RMSE).

    Example: [cyan]dchag bench parity --seeds 5 --tasks forecast,mae[/]
    """
    names = [v.strip() for v in variants.split(",") if v.strip()]
    chosen = [t.strip() for t in tasks.split(",") if t.strip()]
    if seeds < 2:
        raise DchagError(f"--seeds {seeds}: a spread needs at least 2 seeds")
    if len(names) < 2 or len(set(names)) != len(names):
        raise DchagError(f"--variants {variants!r}: give the reference and at least one "
                         "other, each once")
    if not chosen or any(t not in TASKS for t in chosen):
        raise DchagError(f"--tasks {tasks!r}", fix=f"choose from {', '.join(TASKS)}")
    data = _inputs(ctx, chosen, era5, appl, work)
    steps = {"forecast": forecast_steps, "mae": mae_steps}
    tables = [_table(ctx, task, str(data[task]), work, names, seeds, steps[task], lead)
              for task in chosen]
    _report(tables, names, out_path, {"steps": steps, "lead": lead, "seeds": seeds,
                                      "variants": names,
                                      "data": {k: str(v) for k, v in data.items() if v}})


def _inputs(ctx: typer.Context, chosen: list[str], era5: Path | None, appl: Path | None,
            work: Path) -> dict[str, Path | None]:
    """The stores to train on: given, or the quickstart's samples made once in --work."""
    work.mkdir(parents=True, exist_ok=True)
    data = {"forecast": era5, "mae": appl}
    if "forecast" in chosen and era5 is None:
        if not (work / "era5.zarr").exists():  # written atomically: present means whole
            shutil.rmtree(work / "era5_raw", ignore_errors=True)
            for args in recipes.sample_era5(work):
                _run(ctx, args)
        data["forecast"] = work / "era5.zarr"
    if "mae" in chosen and appl is None:
        if not (work / "appl.zarr").exists():
            shutil.rmtree(work / "appl_raw", ignore_errors=True)
            for args in recipes.sample_appl(work):
                _run(ctx, args)
        data["mae"] = work / "appl.zarr"
    return data


def _table(ctx: typer.Context, task: str, data: str, work: Path, names: list[str],
           seeds: int, steps: int, lead: str):
    from pipelines.bench.parity import ParityTable

    values = np.full((len(names), seeds), np.nan)
    losses = np.full_like(values, np.nan)
    details: list[list] = [[None] * seeds for _ in names]
    for s in range(seeds):  # seeds outermost: a stopped bench still has paired results
        for i, v in enumerate(names):
            values[i, s], losses[i, s], details[i][s] = _one(ctx, task, data, work, v, s,
                                                             steps, lead)
    detail = {"model_rmse": np.array(details)} if task == "forecast" else {}
    return ParityTable(task, METRICS[task], names, list(range(seeds)), values, losses, detail)


def _report(tables: list, names: list[str], out_path: Path, attrs: dict) -> None:
    from pipelines.bench.parity_store import write_parity
    from pipelines.plots.parity import plot_parity

    write_parity(tables, out_path, attrs)
    png = plot_parity(tables, out_path.with_suffix(".png"))
    for table in tables:
        for row in table.summary():
            line = (f"{row['task']:>8} {row['variant']:>8}: metric {row['mean']:.4f} "
                    f"(seed CV {row['seed_cv']:.1%})")
            if row["variant"] != names[0]:
                verdict = "passes" if row["loss_below_1pct"] else "fails"
                line += (f"; vs {names[0]} {row['geo_ratio']:.3f}, t 95 % [{row['t_lo']:.3f}, "
                         f"{row['t_hi']:.3f}] (bootstrap [{row['ratio_lo']:.3f}, "
                         f"{row['ratio_hi']:.3f}]); <1 % loss {verdict}: one-sided 95 % "
                         f"bound {row['upper_95']:.3f}")
            out.print(line)
    note = few_seeds_note(len(tables[0].seeds))
    if note:
        out.print(f"note: {note}")
    out.print(f"written: {out_path}, {png}")
