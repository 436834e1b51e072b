"""`dchag quickstart`: the whole chain on the shipped sample data, one stage at a time.

Each stage is the ordinary command, echoed before it runs, so the output doubles as a
recipe for running the stages on real data.
"""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

import typer

from dchag_cli.console import err, out, user_errors
from pipelines.errors import DchagError
from pipelines.guard import check_replaceable, mark_folder

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


DAYS = 150  # long enough for a 7-day lead in a held-out test period
LEADS = "6h,1d,3d,7d"


def stages(folder: Path, gpus: int, forecast_steps: int, mae_steps: int) -> list[list[str]]:
    f = str(folder)
    raw, era5, appl = f"{f}/era5_raw", f"{f}/era5.zarr", f"{f}/appl.zarr"
    fc, mae = f"{f}/forecast", f"{f}/mae"
    common = ["--preset", "tiny", "--variant", "L", "--gpus", str(gpus), "--workers", "0",
              "--batch-size", "8", "--lr", "2e-3", "--log-every", "25"]
    return [
        ["sample", "era5", "--out", raw, "--days", str(DAYS), "--resolution", "2.5",
         "--split-days", "30", "--seed", "0"],
        # a 121-day climatology window: the record is 5 months, so the test period's days
        # of year are covered by training days (WeatherBench 2 uses 61 over decades)
        ["prep", "era5", raw, "--preset", "sample-14", "--clim-window", "121", "--out", era5],
        ["train", "forecast", "--data", era5, "--out", fc, "--lead", LEADS,
         "--steps", str(forecast_steps), "--val-every", str(forecast_steps // 2),
         "--ckpt-every", str(forecast_steps), *common],
        ["eval", "forecast", "--run", fc, "--data", era5, "--map-channel", "z_500"],
        ["prep", "appl", str(SAMPLE / "appl" / "manifest.csv"), "--size", "16", "--out", appl],
        ["pretrain", "--data", appl, "--out", mae, "--mask-ratio", "0.5",
         "--steps", str(mae_steps), "--val-every", str(mae_steps),
         "--ckpt-every", str(mae_steps), *common],
        ["predict", "masks", "--run", mae, "--data", appl, "--mask-ratio", "0.5"],
        ["eval", "masks", "--recon", f"{mae}/reconstruction.zarr", "--data", appl],
    ]


WHAT_IT_SHOWS = (
    "What the sample shows: every stage working end to end, on data small enough for a "
    "laptop. The weather is synthetic (travelling waves with daily and seasonal cycles, "
    f"{DAYS} days at 5.625°), the forecast is scored on its held-out test period against "
    "persistence and a training-period climatology, and the plants are 4 cubes. It cannot "
    "show skill on real weather, how a model scales, or the paper's memory and speed "
    "gains — `dchag bench` measures those."
)


@user_errors
def quickstart(
    out_dir: Path = typer.Option(Path("quickstart"), "--out", "-o",
                                 help="Folder for every artifact, run and figure."),
    gpus: int = typer.Option(2, help="Ranks for training (gloo processes on a CPU)."),
    forecast_steps: int = typer.Option(300, help="Forecast training steps."),
    mae_steps: int = typer.Option(150, help="MAE pretraining steps."),
    overwrite: bool = typer.Option(False, help="Start again in an existing --out."),
) -> None:
    """Run the whole chain on sample data: synthetic ERA5 (150 days) → prep era5 → train
    forecast (tiny, D-CHAG-L, 2 ranks, leads 6h–7d) → eval forecast on the held-out test
    period (vs persistence and climatology); the shipped cubes → prep appl → pretrain
    MAE → predict masks → eval masks.

    Each stage is the ordinary command, printed before it runs: the output is a recipe for
    real data.
    """
    from dchag_cli.app import app

    check_replaceable(out_dir, ("quickstart",), [SAMPLE], overwrite,
                      "pass --overwrite to start again, or choose another --out")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    mark_folder(out_dir, "quickstart")
    t0 = time.perf_counter()
    steps = stages(out_dir, gpus, forecast_steps, mae_steps)
    for i, args in enumerate(steps, 1):
        err.rule(f"[bold]{i}/{len(steps)}[/] dchag {shlex.join(args)}", align="left")
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise DchagError(f"stage {i} failed: dchag {shlex.join(args)}") from None
    out.print(WHAT_IT_SHOWS)
    out.print(f"quickstart finished in {time.perf_counter() - t0:.0f} s. Figures: "
              f"{out_dir}/forecast/eval/map_z_500.png, "
              f"{out_dir}/forecast/eval/scores_vs_lead.png, {out_dir}/forecast/loss.png, "
              f"{out_dir}/mae/reconstruction.png, {out_dir}/mae/loss.png")
