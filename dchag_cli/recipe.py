"""`dchag recipe weatherbench`: the WeatherBench / ClimaX 5.625° protocol as one command —
prepare from the WeatherBench 2 store by URL, train on 1979–2015, validate on 2016, score
2017–2018 at 6 h … 7 d — so a score is comparable with the published ones by construction."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from dchag_cli import recipes
from dchag_cli.console import out, user_errors
from pipelines.errors import DchagError

app = typer.Typer(help="Shipped protocols, each a chain of ordinary dchag commands.",
                  no_args_is_help=True)

WB2_64x32 = ("gs://weatherbench2/datasets/era5/"
             "1959-2023_01_10-6h-64x32_equiangular_conservative.zarr")
PERIODS = {"train": "1979:2015", "val": "2016", "test": "2017:2018"}
LEADS = "6h,1d,3d,5d,7d"
CHANNEL_SETS = {"climax": "climax-48", "paper": "era5-80"}


def weatherbench_stages(work: Path, source: str, channels: str, gpus: int, variant: str,
                        model: str, steps: int) -> list[list[str]]:
    w = str(work)
    era5, run = f"{w}/era5.zarr", f"{w}/forecast"
    return [
        ["prep", "era5", source, "--preset", CHANNEL_SETS[channels], "--period",
         f"{PERIODS['train'].split(':')[0]}:{PERIODS['test'].split(':')[1]}",
         "--train-years", PERIODS["train"], "--out", era5],
        ["train", "forecast", "--data", era5, "--out", run, "--lead", LEADS,
         "--train-period", PERIODS["train"], "--val-period", PERIODS["val"],
         "--test-period", PERIODS["test"], "--preset", model, "--variant", variant,
         "--gpus", str(gpus), "--steps", str(steps)],
        ["eval", "forecast", "--run", run, "--data", era5, "--lead", LEADS,
         "--map-channel", "z_500"],
    ]


@app.command("weatherbench")
@user_errors
def weatherbench(
    ctx: typer.Context,
    work: Path = typer.Option(Path("weatherbench"), "--work", "-w",
                              help="Folder for the store, the run and the scores."),
    source: str = typer.Option(WB2_64x32, help="The ERA5 zarr to read: WeatherBench 2's "
                               "64×32 store by default (13 levels); a folder works too."),
    channels: str = typer.Option("climax", help="climax: ClimaX's 48 channels (in the "
                                 "13-level store); paper: the D-CHAG paper's 80 (q, t, u, v "
                                 "on 16 levels — needs a 37-level store as --source)."),
    gpus: int = typer.Option(8, help="Ranks for training."),
    variant: str = typer.Option("L", help="D-CHAG variant (L or C)."),
    model: str = typer.Option("base", help="Model preset (see `dchag pretrain --help`)."),
    steps: int = typer.Option(100_000, help="Training steps."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands and what the "
                                 "prep would read (times, channels, bytes), reading metadata "
                                 "and coordinates only; run nothing."),
) -> None:
    """The WeatherBench / ClimaX 5.625° protocol: train 1979–2015, validate 2016, test
    2017–2018, leads 6 h, 1 d, 3 d, 5 d, 7 d, scored by `eval forecast` with its scorecard
    against the published baselines.

    Example: [cyan]dchag recipe weatherbench --work wb --dry-run[/]
    """
    if channels not in CHANNEL_SETS:
        raise DchagError(f"--channels {channels!r}", fix=f"choose {' or '.join(CHANNEL_SETS)}")
    stages = weatherbench_stages(work, source, channels, gpus, variant, model, steps)
    if dry_run:
        for args in stages:
            out.print(f"dchag {shlex.join(args)}", markup=False, highlight=False, soft_wrap=True)
        recipes.run_command(ctx, [*stages[0], "--dry-run"], "would read", "the dry run failed")
        return
    work.mkdir(parents=True, exist_ok=True)
    for k, args in enumerate(stages, 1):
        recipes.run_command(ctx, args, f"{k}/{len(stages)}",
                            f"stage {k}/{len(stages)} failed")
