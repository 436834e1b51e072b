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


def stages(folder: Path, gpus: int, forecast_steps: int, mae_steps: int) -> list[list[str]]:
    f = str(folder)
    era5, appl, fc, mae = f"{f}/era5.zarr", f"{f}/appl.zarr", f"{f}/forecast", f"{f}/mae"
    common = ["--preset", "tiny", "--variant", "L", "--gpus", str(gpus), "--workers", "0",
              "--batch-size", "8", "--lr", "2e-3", "--log-every", "25"]
    return [
        ["prep", "era5", str(SAMPLE / "era5"), "--preset", "sample-14", "--out", era5],
        ["train", "forecast", "--data", era5, "--out", fc, "--lead", "1d",
         "--steps", str(forecast_steps), "--val-every", str(forecast_steps),
         "--ckpt-every", str(forecast_steps), *common],
        ["eval", "forecast", "--run", fc, "--data", era5, "--lead", "1d",
         "--map-channel", "z_500"],
        ["prep", "appl", str(SAMPLE / "appl" / "manifest.csv"), "--size", "16", "--out", appl],
        ["pretrain", "--data", appl, "--out", mae, "--mask-ratio", "0.5",
         "--steps", str(mae_steps), "--val-every", str(mae_steps),
         "--ckpt-every", str(mae_steps), *common],
        ["predict", "masks", "--run", mae, "--data", appl, "--mask-ratio", "0.5"],
        ["eval", "masks", "--recon", f"{mae}/reconstruction.zarr", "--data", appl],
    ]


@user_errors
def quickstart(
    out_dir: Path = typer.Option(Path("quickstart"), "--out", "-o",
                                 help="Folder for every artifact, run and figure."),
    gpus: int = typer.Option(2, help="Ranks for training (gloo processes on a CPU)."),
    forecast_steps: int = typer.Option(300, help="Forecast training steps."),
    mae_steps: int = typer.Option(150, help="MAE pretraining steps."),
    overwrite: bool = typer.Option(False, help="Start again in an existing --out."),
) -> None:
    """Run the whole chain on the shipped sample data (about 1.5 minutes on a 2-core CPU):
    prep era5 → train forecast (tiny, D-CHAG-L, 2 ranks) → eval forecast (vs persistence
    and climatology), and prep appl → pretrain MAE → predict masks → eval masks.

    The forecast is scored on the sample's own init times (8 days, the training period):
    it shows the chain working, not skill on unseen weather.
    """
    from dchag_cli.app import app

    check_replaceable(out_dir, ("quickstart",), [SAMPLE], overwrite,
                      "pass --overwrite to start again, or choose another --out")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    mark_folder(out_dir, "quickstart")
    t0 = time.perf_counter()
    for i, args in enumerate(stages(out_dir, gpus, forecast_steps, mae_steps), 1):
        err.rule(f"[bold]{i}/7[/] dchag {shlex.join(args)}", align="left")
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise DchagError(f"stage {i} failed: dchag {shlex.join(args)}") from None
    out.print(f"quickstart finished in {time.perf_counter() - t0:.0f} s. Figures: "
              f"{out_dir}/forecast/eval/map_z_500.png, "
              f"{out_dir}/forecast/eval/scores_vs_lead.png, {out_dir}/forecast/loss.png, "
              f"{out_dir}/mae/reconstruction.png, {out_dir}/mae/loss.png")
