"""The sample's training recipes, shared by `dchag quickstart` and `dchag bench parity`,
so the parity measured is the parity of the model the quickstart trains."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.markup import escape

from dchag_cli.console import err

# The key under which the root command puts its runner of one stage (`root.run_stage`)
# into the click context: `ctx.meta[STAGE_RUNNER](args) -> exit code`.
STAGE_RUNNER = "dchag.run_stage"

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"

# More than a year, so the held-out test period (the last 10 %: late December to early
# February) falls one year after the same season in training: the climatology it is scored
# against is in season, and "beats climatology" means something.
DAYS = 400
RESOLUTION = "5"  # degrees, regridded to 5.625°
LEADS = "6h,1d,3d,7d"
FORECAST_STEPS = 1600
MAE_STEPS = 800
MAE_SIZE = "16"  # pixels a side the cubes are prepared at
MASK_RATIO = "0.5"
APPL_CUBES = "12"
MASK_DRAWS = "5"  # masks per held-out cube: the model's lead gets a paired interval


def sample_era5(folder: Path) -> list[list[str]]:
    raw, era5 = f"{folder}/era5_raw", f"{folder}/era5.zarr"
    return [
        ["sample", "era5", "--out", raw, "--days", str(DAYS), "--resolution", RESOLUTION,
         "--split-days", "100", "--seed", "0"],
        # a 121-day climatology window: one year of training data holds each day of year
        # once, so a wider window than WeatherBench 2's 61 days (over decades) smooths it
        ["prep", "era5", raw, "--preset", "sample-14", "--clim-window", "121", "--out", era5],
    ]


def sample_appl(folder: Path) -> list[list[str]]:
    """Twelve plants (the four of sample_data/appl first): four plant lines, so the
    held-out line is three cubes and a score is not one cube's luck."""
    raw = f"{folder}/appl_raw"
    return [["sample", "appl", "--out", raw, "--n", APPL_CUBES, "--size", "32", "--seed", "0"],
            ["prep", "appl", f"{raw}/manifest.csv", "--size", MAE_SIZE,
             "--out", f"{folder}/appl.zarr"]]


def variant_flags(variant: str) -> list[str]:
    """`L`, `C` or `baseline`, or any of them with its channel stage named after a dash:
    `baseline-folded` is the pure-TP baseline with the folded channel stage."""
    name, _, impl = variant.partition("-")
    return ["--variant", name, *(["--channel-impl", impl] if impl else [])]


def common(gpus: int, variant: str = "L", seed: int = 0) -> list[str]:
    return ["--preset", "tiny", *variant_flags(variant), "--gpus", str(gpus), "--workers", "0",
            "--batch-size", "8", "--lr", "2e-3", "--seed", str(seed)]


def train_forecast(era5: str, run: str, steps: int, gpus: int, variant: str = "L",
                   seed: int = 0, leads: str = LEADS) -> list[str]:
    return ["train", "forecast", "--data", era5, "--out", run, "--lead", leads,
            "--steps", str(steps), "--val-every", str(steps // 2), "--ckpt-every", str(steps),
            "--log-every", str(max(1, steps // 8)), *common(gpus, variant, seed)]


def pretrain_mae(appl: str, run: str, steps: int, gpus: int, variant: str = "L",
                 seed: int = 0) -> list[str]:
    return ["pretrain", "--data", appl, "--out", run, "--mask-ratio", MASK_RATIO,
            "--steps", str(steps), "--val-every", str(steps), "--ckpt-every", str(steps),
            "--log-every", str(max(1, steps // 8)), *common(gpus, variant, seed)]


def score_masks(appl: str, run: str) -> list[list[str]]:
    return [["predict", "masks", "--run", run, "--data", appl, "--mask-ratio", MASK_RATIO,
             "--draws", MASK_DRAWS],
            ["eval", "masks", "--recon", f"{run}/reconstruction.zarr", "--data", appl]]


def run_command(ctx: typer.Context, args: list[str], label: str, failure: str) -> None:
    """One `dchag` command in this process, echoed first (whole, on a line of its own, so
    it can be copied at any terminal width). A failed stage stops the chain: after its own
    error line, one `stopped:` line, and the stage's own exit code becomes the caller's
    (1, or 130 after Ctrl-C).

    The command tree comes from the running root, through the context `ctx` of the command
    that calls this (`root.run_stage`): a stage never imports the registry that
    registers it."""
    run = ctx.meta[STAGE_RUNNER]
    err.rule(f"[bold]{label}[/]", align="left")
    err.print(f"dchag {shlex.join(args)}", markup=False, highlight=False, soft_wrap=True)
    code = run(args)
    if code:  # the stage printed its own error line; this says the chain stops here
        err.print(f"[bold red]stopped:[/] {escape(failure)} (exit code {code}); nothing "
                  "after it was run", soft_wrap=True)
        raise typer.Exit(code)
