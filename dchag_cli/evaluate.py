"""`dchag eval forecast`, `dchag predict masks` and `dchag eval masks`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.table import Table

from dchag_cli.console import RichProgress, err, out, user_errors
from pipelines.errors import DchagError
from pipelines.guard import output_folder
from pipelines.metrics.weather import CONVENTIONS
from pipelines.provenance import provenance
from pipelines.train.config import format_lead, parse_leads

if TYPE_CHECKING:
    import torch

    from pipelines.eval.forecast import ForecastScores

eval_app = typer.Typer(help="Score trained runs against baselines.", no_args_is_help=True)
predict_app = typer.Typer(help="Run trained models on data.", no_args_is_help=True)


def device() -> torch.device:
    import torch

    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


@eval_app.command("forecast")
@user_errors
def forecast(
    run: Path = typer.Option(..., help="A run of `dchag train forecast`."),
    data: Path = typer.Option(..., help="era5.zarr to evaluate on (same channels and grid)."),
    lead: list[str] = typer.Option(None, help="Lead times (6h, 3d, 2w); repeat or comma-"
                                   "separate. [default: the run's trained leads]"),
    period: str = typer.Option(None, help="Init times to use: 2018, 2017:2018 or "
                               "2018-01-01:2018-03-31. [default: all]"),
    rollout: bool = typer.Option(False, help="Reach untrained leads by applying a trained "
                                 "lead repeatedly (models predicting their full input)."),
    convention: str = typer.Option("weatherbench2", help=f"Score definitions: "
                                   f"{', '.join(CONVENTIONS)} (see README)."),
    map_channel: str = typer.Option(None, help="Channel for the map PNG. [default: first]"),
    batch: int = typer.Option(16, help="Init times per forward pass."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder for predictions.zarr, "
                                 "scores.zarr and PNGs. [default: RUN/eval]"),
    overwrite: bool = typer.Option(False, help="Replace earlier results in --out."),
) -> None:
    """Forecast every init time of --period at each --lead and score the model side by side
    with persistence and climatology: RMSE, MSE and latitude-weighted ACC, in physical units.

    Example: [cyan]dchag eval forecast --run runs/fc --data era5.zarr --lead 1d,3d --period 2018[/]
    """
    if convention not in CONVENTIONS:
        raise DchagError(f"--convention {convention!r}", fix=f"choose {', '.join(CONVENTIONS)}")
    if batch < 1:
        raise DchagError(f"--batch {batch} must be at least 1")
    from pipelines.eval.forecast import evaluate_forecast, write_predictions, write_scores
    from pipelines.eval.runs import load_run, run_files
    from pipelines.plots.forecast import plot_maps, plot_scores_vs_lead

    trained = load_run(run, "forecast", device())
    leads = parse_leads(lead) if lead else sorted(trained.cfg.leads)
    if map_channel is not None and map_channel not in trained.out_channels:
        raise DchagError(f"--map-channel {map_channel} is not a forecast channel",
                         fix=f"choose from {', '.join(trained.out_channels)}")
    channel = map_channel or trained.out_channels[0]
    out_dir = out_dir or run / "eval"
    items = {"predictions.zarr": "predictions", "scores.zarr": "scores",
             f"map_{channel}.png": None, "scores_vs_lead.png": None}
    with output_folder(out_dir, items, overwrite, [*run_files(run), data]) as stage:
        with RichProgress() as progress:
            res = evaluate_forecast(trained, data, leads, period, rollout, convention, batch,
                                    device(), progress)
        attrs = {"run": str(run.resolve()), "checkpoint_step": trained.step,
                 "provenance": provenance("eval forecast", {
                     "leads": leads, "period": period, "rollout": rollout,
                     "convention": convention}, [data], seed=None)}
        write_predictions(res, stage / "predictions.zarr", attrs)
        write_scores(res, stage / "scores.zarr", attrs)
        truth, init_pos = _first_truth(data, res, channel)
        plot_maps(res, truth, channel, init_pos, 0, stage / f"map_{channel}.png")
        plot_scores_vs_lead(res, stage / "scores_vs_lead.png")
    print_forecast_tables(res)
    for text in res.notes:
        err.print(f"[yellow]note:[/] {text}")
    out.print(f"written: {', '.join(str(out_dir / name) for name in items)}")


def _first_truth(data: Path, res: ForecastScores, channel: str) -> tuple[np.ndarray, int]:
    """The observed field for the map (first init of the first lead) and that init's
    position among the predictions' init times."""
    from pipelines.data.zarr_store import open_artifact

    group = open_artifact(data, "era5")
    names = [str(n) for n in group.attrs["channels"]]
    plan = res.plans[0]
    pos = int(np.flatnonzero(res.init_hours == group["time"][plan.inits[0]])[0])
    return group["data"][plan.valid[0], names.index(channel)], pos


def print_forecast_tables(res: ForecastScores) -> None:
    from pipelines.eval.forecast import METHODS

    for li, plan in enumerate(res.plans):
        how = f", rolled out in {plan.lead // plan.step} steps of " \
              f"{format_lead(plan.step)}" if plan.rollout else ""
        table = Table(title=f"lead {format_lead(plan.lead)}{how}: {len(plan.inits)} init "
                      f"times, {res.convention} convention (lower RMSE, higher wACC is "
                      "better)", title_justify="left")
        table.add_column("channel")
        for m in METHODS:
            table.add_column(f"RMSE {m}", justify="right")
        for m in METHODS[:2]:
            table.add_column(f"wACC {m}", justify="right")
        table.add_column("MSE model", justify="right")
        for c, name in enumerate(res.channels):
            rmse = res.scores["rmse"][:, li, c]
            best = int(np.nanargmin(rmse)) if np.isfinite(rmse).any() else -1
            cells = [(f"[bold]{v:.4g}[/]" if m == best else f"{v:.4g}") if np.isfinite(v)
                     else "—" for m, v in enumerate(rmse)]
            accs = [f"{v:.3f}" if np.isfinite(v) else "—" for v in res.scores["wacc"][:2, li, c]]
            table.add_row(name, *cells, *accs, f"{res.scores['mse'][0, li, c]:.4g}")
        out.print(table)


@predict_app.command("masks")
@user_errors
def predict_masks_cmd(
    run: Path = typer.Option(..., help="A run of `dchag pretrain` on appl.zarr."),
    data: Path = typer.Option(..., help="appl.zarr with the run's bands."),
    mask_ratio: float = typer.Option(0.75, help="Share of patches hidden from the model."),
    samples: str = typer.Option("val", help="val (the run's held-out plants) or all."),
    seed: int = typer.Option(0, help="Seed of the masks."),
    batch: int = typer.Option(8, help="Cubes per forward pass."),
    out_path: Path = typer.Option(None, "--out", "-o",
                                  help="[default: RUN/reconstruction.zarr]"),
    overwrite: bool = typer.Option(False, help="Replace an existing reconstruction."),
) -> None:
    """Hide a random share of each cube's patches and reconstruct every band of them.

    Example: [cyan]dchag predict masks --run runs/mae --data appl.zarr --mask-ratio 0.75[/]
    """
    from pipelines.data.zarr_store import check_writable_target
    from pipelines.eval.masks import predict_masks
    from pipelines.eval.runs import load_run, run_files

    if batch < 1:
        raise DchagError(f"--batch {batch} must be at least 1")
    out_path = out_path or run / "reconstruction.zarr"
    check_writable_target(out_path, overwrite=overwrite, kinds=("reconstruction",),
                          inputs=[*run_files(run), data])
    trained = load_run(run, "mae", device())
    with RichProgress() as progress:
        n = predict_masks(trained, data, out_path, mask_ratio, samples, seed, batch, device(),
                          {"run": str(run.resolve()), "checkpoint_step": trained.step,
                           "provenance": provenance("predict masks", {
                               "mask_ratio": mask_ratio, "samples": samples}, [data], seed)},
                          progress)
    out.print(f"reconstructed {n} cubes ({mask_ratio:.0%} of patches masked) → {out_path}")


@eval_app.command("masks")
@user_errors
def eval_masks_cmd(
    recon: Path = typer.Option(..., help="reconstruction.zarr from `dchag predict masks`."),
    data: Path = typer.Option(..., help="The appl.zarr it was predicted from."),
    sample: int = typer.Option(0, help="Which reconstructed cube to draw."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder for mask_scores.zarr and "
                                 "the PNG. [default: next to the reconstruction]"),
) -> None:
    """Score reconstructions on the masked pixels: RMSE and MSE (reflectance), PSNR and SSIM
    per band, and the spectral angle (SAM) on plant pixels.

    Example: [cyan]dchag eval masks --recon runs/mae/reconstruction.zarr --data appl.zarr[/]
    """
    from pipelines.data.zarr_store import open_artifact
    from pipelines.eval.masks import eval_masks, write_mask_scores
    from pipelines.plots.masks import plot_reconstruction

    out_dir = out_dir or recon.parent
    n = open_artifact(recon, "reconstruction")["sample_index"].shape[0]
    if not 0 <= sample < n:
        raise DchagError(f"--sample {sample} out of range ({n} reconstructed cubes)")
    items = {"mask_scores.zarr": "mask_scores", "reconstruction.png": None}
    with output_folder(out_dir, items, True, [recon, data]) as stage:
        with RichProgress() as progress:
            scores = eval_masks(recon, data, progress)
        write_mask_scores(scores, stage / "mask_scores.zarr", {
            "reconstruction": str(recon.resolve()),
            "provenance": provenance("eval masks", {}, [recon, data], seed=None)})
        plot_reconstruction(recon, data, sample, stage / "reconstruction.png")
    png = out_dir / "reconstruction.png"
    table = Table(title=f"masked-patch reconstruction: {n} cubes", title_justify="left")
    table.add_column("score")
    table.add_column("value", justify="right")
    table.add_row("RMSE (reflectance, masked pixels)", f"{scores.rmse:.4g}")
    table.add_row("MSE", f"{scores.mse:.4g}")
    table.add_row("PSNR (dB, mean over bands)", f"{np.nanmean(scores.psnr):.2f}")
    table.add_row("SSIM (mean over bands)", f"{np.nanmean(scores.ssim):.3f}")
    table.add_row("SAM (degrees, masked plant pixels)", f"{np.nanmean(scores.sample_sam):.2f}")
    for name, value in scores.region_rmse.items():
        table.add_row(f"RMSE {name}", f"{value:.4g}")
    out.print(table)
    out.print(f"written: {out_dir / 'mask_scores.zarr'}, {png}")
