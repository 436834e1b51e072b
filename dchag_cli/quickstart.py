"""`dchag quickstart`: the whole chain on the shipped sample data, one stage at a time.

Each stage is the ordinary command, echoed before it runs, so the output doubles as a
recipe for running the stages on real data.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from dchag_cli import recipes
from dchag_cli.console import out, user_errors
from dchag_cli.recipes import DAYS, SAMPLE
from pipelines.guard import check_replaceable, mark_folder


def stages(folder: Path, gpus: int, forecast_gpus: int, forecast_steps: int,
           mae_steps: int) -> list[list[str]]:
    f = str(folder)
    era5, appl, fc, mae = f"{f}/era5.zarr", f"{f}/appl.zarr", f"{f}/forecast", f"{f}/mae"
    return [
        *recipes.sample_era5(folder),
        recipes.train_forecast(era5, fc, forecast_steps, forecast_gpus),
        ["eval", "forecast", "--run", fc, "--data", era5, "--map-channel", "z_500"],
        *recipes.sample_appl(folder),
        recipes.pretrain_mae(appl, mae, mae_steps, gpus),
        *recipes.score_masks(appl, mae),
    ]


WHAT_IT_SHOWS = (
    "What the sample shows: every stage working end to end, on data small enough for a "
    "laptop. The weather is synthetic (travelling waves with daily and seasonal cycles, "
    f"{DAYS} days at 5.625°), the forecast is scored on its held-out test period against "
    "persistence and a training-period climatology, and the plants are 12 synthetic "
    "cubes (3 held out). It cannot show skill on real weather, how a model scales, or the "
    "paper's memory and speed gains — `dchag bench` measures those."
)


def closing_scores(folder: Path) -> list[str]:
    """Who won, read back from the stages' outputs: per lead for the forecast, and the MAE
    against inpainting from the visible pixels."""
    from pipelines.eval.mask_store import read_mask_verdicts
    from pipelines.eval.verdict import lead_verdicts

    lines = ["Held-out test period, global RMSE:"]
    lines += [f"  {v.sentence()}" for v in
              lead_verdicts(folder / "forecast" / "eval" / "scores.zarr")]
    lines += [f"Held-out cubes: {v}" for v in
              read_mask_verdicts(folder / "mae" / "mask_scores.zarr")]
    return lines


@user_errors
def quickstart(
    ctx: typer.Context,
    out_dir: Path = typer.Option(Path("quickstart"), "--out", "-o",
                                 help="Folder for every artifact, run and figure."),
    gpus: int = typer.Option(2, help="Ranks for MAE pretraining (gloo processes on a CPU): "
                             "the distributed D-CHAG path, tensor-parallel over channel "
                             "groups."),
    forecast_gpus: int = typer.Option(1, help="Ranks for the forecaster. One by default: on "
                                      "a 2-core CPU one process trains about 2× faster than "
                                      "two taking turns, and skill needs the steps."),
    forecast_steps: int = typer.Option(recipes.FORECAST_STEPS,
                                       help="Forecast training steps."),
    mae_steps: int = typer.Option(recipes.MAE_STEPS, help="MAE pretraining steps."),
    overwrite: bool = typer.Option(False, help="Start again in an existing --out."),
) -> None:
    """Run the whole chain on sample data: synthetic ERA5 (400 days) → prep era5 → train
    forecast (tiny, D-CHAG-L, one rank, leads 6h–7d) → eval forecast on the held-out test
    period (vs persistence and climatology); twelve sample cubes (the four shipped ones
    first) → prep appl → pretrain MAE → predict masks (5 mask draws) → eval masks (vs five
    inpainting baselines). It ends by saying, per lead, which forecaster won, and whether
    the MAE beats the best baseline on masked RMSE and spectral angle.

    Each stage is the ordinary command, printed before it runs: the output is a recipe for
    real data.
    """
    check_replaceable(out_dir, ("quickstart",), [SAMPLE], overwrite,
                      "pass --overwrite to start again, or choose another --out")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    mark_folder(out_dir, "quickstart")
    t0 = time.perf_counter()
    steps = stages(out_dir, gpus, forecast_gpus, forecast_steps, mae_steps)
    for i, args in enumerate(steps, 1):
        recipes.run_command(ctx, args, f"{i}/{len(steps)}", f"stage {i} failed")
    out.print(WHAT_IT_SHOWS)
    for line in closing_scores(out_dir):
        out.print(line)
    out.print(f"quickstart finished in {time.perf_counter() - t0:.0f} s. Figures: "
              f"{out_dir}/forecast/eval/map_z_500.png, "
              f"{out_dir}/forecast/eval/scores_vs_lead.png, "
              f"{out_dir}/forecast/eval/scorecard.png (beside published scores, marked "
              f"synthetic), {out_dir}/forecast/loss.png, "
              f"{out_dir}/mae/reconstruction.png, {out_dir}/mae/spectra.png, "
              f"{out_dir}/mae/loss.png")
