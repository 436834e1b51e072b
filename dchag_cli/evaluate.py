"""`dchag eval forecast`, `dchag predict masks`, `dchag eval masks` and `dchag eval bands`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.table import Table

from dchag_cli.console import RichProgress, err, log_every_option, out, user_errors
from pipelines.data.times import format_lead, parse_leads
from pipelines.errors import DchagError
from pipelines.metrics.weather import CLIMAX_BATCH, CONVENTIONS
from pipelines.provenance import provenance

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
    run: Path = typer.Option(None, help="A run of `dchag train forecast` to score, or its "
                             "model file (`dchag export model`).",
                             show_default="runs/forecast, where `dchag train forecast` "
                             "puts it"),
    forecast_file: Path = typer.Option(None, "--forecast", help="Or: another model's "
                                       "forecast in WeatherBench 2's layout (zarr or "
                                       "netCDF), scored against --data."),
    data: Path = typer.Option(Path("era5.zarr"), help="era5.zarr with the truth (same "
                              "channels and grid as the run)."),
    lead: list[str] = typer.Option(None, help="Lead times (6h, 3d, 7d); repeat or comma-"
                                   "separate.", show_default="the run's trained leads"),
    period: str = typer.Option(None, help="Init times to score: 2018, 2018-12, 2018-12-24, "
                               "2018-12-24T18, or FIRST:LAST of those (whole spans).",
                               show_default="the run's held-out test period"),
    climatology: Path = typer.Option(None, help="A climatology in WeatherBench 2's layout "
                                     "(hour, dayofyear, latitude, longitude), regridded "
                                     "if needed.", show_default="the one in --data"),
    rollout: bool = typer.Option(False, help="Reach untrained leads by applying a trained "
                                 "lead repeatedly (models predicting their full input)."),
    convention: str = typer.Option("weatherbench2", help=f"Score definitions: "
                                   f"{', '.join(CONVENTIONS)} (see README)."),
    climax_batch: int = typer.Option(CLIMAX_BATCH, help="climax convention: inits per ACC "
                                     "batch (ClimaX's test batch size)."),
    map_channel: str = typer.Option(None, help="Channel for the map PNG.",
                                    show_default="first"),
    batch: int = typer.Option(16, help="Init times per forward pass."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder for predictions.zarr, "
                                 "scores.zarr and PNGs.",
                                 show_default="RUN/eval for a run folder, FILE_eval beside "
                                 "a model file or --forecast"),
    drop_channels: str = typer.Option(None, help="Input channels absent at inference, e.g. "
                                      "z_500,t2m: the model runs without them (a run's "
                                      "forecasts only).", show_default="none"),
    robustness: bool = typer.Option(False, help="Also score the run with each single input "
                                    "channel, and each channel group, missing: "
                                    "robustness.zarr and robustness.png."),
    references: Path = typer.Option(None, help="More published scores for the scorecard: a "
                                    "CSV with the shipped one's columns (model, channel, "
                                    "lead_h, metric, value, model_grid, test_period, source).",
                                    show_default="the shipped WeatherBench leaderboard"),
    log_every: int = log_every_option("init times"),
    overwrite: bool = typer.Option(False, help="Replace earlier results in --out."),
) -> None:
    """Forecast every init time of the period at each lead and score it beside persistence
    and climatology: RMSE, MSE and latitude-weighted ACC in physical units, globally and in
    WeatherBench 2's regions.

    By default the run's held-out test period is scored (it says which). An init is scored
    by every forecaster or by none; those left out are listed with the reason.

    Example: [cyan]dchag eval forecast --run runs/forecast --lead 7d[/]

    Another model: [cyan]dchag eval forecast --forecast other.zarr --data era5.zarr[/]
    """
    if forecast_file is None and run is None:
        run = default_input(Path("runs/forecast"), "run", "dchag train forecast",
                            "--run RUN or --forecast FILE")
    from pipelines.jobs.forecast_eval import ForecastJob, run_forecast_job

    job = ForecastJob(data, run, forecast_file, parse_leads(lead) if lead else None, period,
                      rollout, convention, batch, climatology, climax_batch, map_channel,
                      out_dir, _drop_list(drop_channels, "channel", "z_500,t2m"),
                      robustness, references, overwrite)
    done = run_forecast_job(job, device(), lambda: RichProgress(log_every), lambda label:
                            err.print(f"robustness: scored without {label}", soft_wrap=True))
    _report_forecast(done)


def _report_forecast(done) -> None:
    from dchag_cli.scorecard_view import print_scorecard
    from pipelines.eval.verdict import lead_verdicts

    res = done.res
    out.print(f"scored: {res.source}\nperiod: {res.period}\nclimatology: {res.climatology}")
    print_forecast_tables(res)
    for verdict in lead_verdicts(done.out_dir / "scores.zarr"):
        out.print(verdict.sentence())
    print_scorecard(done.rows, done.unmatched)
    if done.robust is not None:
        worst, ratio = done.robust.worst()
        out.print(f"robustness: with {worst} missing the RMSE is {ratio:.2f}× that with "
                  "every input (the worst single missing channel; mean over leads and "
                  "scored channels)")
    for text in res.notes:
        err.print(f"[yellow]note:[/] {text}", soft_wrap=True)
    out.print(f"written: {', '.join(str(done.out_dir / name) for name in done.written)}")


def default_input(path: Path, what: str, producer: str, flag: str) -> Path:
    """The output a previous stage writes by default, if it is here (said in a note)."""
    from pipelines.notes import note

    if not path.exists():
        raise DchagError(f"no {what} given, and no {path} here",
                         fix=f"pass {flag}, or run `{producer}` first (it writes {path})")
    note(f"using {path} (the default output of `{producer}`)")
    return path


def _drop_list(value: str | None, noun: str, example: str) -> list[str]:
    """`--drop-channels A,B`: the names given; refuses a value that names none."""
    names = [c.strip() for c in (value or "").split(",") if c.strip()]
    if value is not None and not names:
        raise DchagError(f"--drop-channels {value!r} names no {noun}",
                         fix=f"write e.g. --drop-channels {example}")
    return names


REGION_LABELS = {"tropics": "tropics", "nh-extratropics": "NH extratr.",
                 "sh-extratropics": "SH extratr."}


def print_forecast_tables(res: ForecastScores) -> None:
    """Per lead: global RMSE of each forecaster and wACC of model and persistence, then
    the model's RMSE per region."""
    from pipelines.eval.forecast import FORECASTERS
    from pipelines.metrics.weather import REGIONS

    regions = list(REGIONS)
    for li, plan in enumerate(res.plans):
        if not plan.inits:
            continue
        how = f", rolled out in {plan.lead // plan.step} steps of " \
              f"{format_lead(plan.step)}" if plan.rollout else ""
        table = Table(title=f"lead {format_lead(plan.lead)}{how}: {len(plan.inits)} init "
                      f"times, {res.convention} convention, global (lower RMSE, higher "
                      "wACC is better; best RMSE in bold)", title_justify="left")
        table.add_column("channel")
        table.add_column("units")
        for f in FORECASTERS:
            table.add_column(f"RMSE {f.replace('climatology_time_mean', 'clim. time mean')}",
                             justify="right")
        for f in FORECASTERS[:2]:
            table.add_column(f"wACC {f}", justify="right")
        for r in regions[1:]:
            table.add_column(f"model RMSE {REGION_LABELS[r]}", justify="right")
        from pipelines.data.channels import pretty_units
        from pipelines.eval.forecast_store import channel_units

        for c, (name, unit) in enumerate(zip(res.channels, map(pretty_units, channel_units(
                res.channels)), strict=True)):
            rmse = res.scores["rmse"][:, li, c, 0]
            best = int(np.nanargmin(rmse)) if np.isfinite(rmse).any() else -1
            cells = [(f"[bold]{v:.4g}[/]" if m == best else f"{v:.4g}") if np.isfinite(v)
                     else "—" for m, v in enumerate(rmse)]
            accs = [f"{v:.3f}" if np.isfinite(v) else "—"
                    for v in res.scores["wacc"][:2, li, c, 0]]
            region_cells = [f"{v:.4g}" if np.isfinite(v) else "—"
                            for v in res.scores["rmse"][0, li, c, 1:]]
            table.add_row(name, unit, *cells, *accs, *region_cells)
        out.print(table)


@predict_app.command("masks")
@user_errors
def predict_masks_cmd(
    run: Path = typer.Option(Path("runs/pretrain"), help="A run of `dchag pretrain` on "
                             "appl.zarr, or its model file (`dchag export model`)."),
    data: Path = typer.Option(Path("appl.zarr"), help="appl.zarr with the run's bands, or "
                              "another sensor's: read through their spectral response, "
                              "reconstructed in the data's bands."),
    mask_ratio: float = typer.Option(0.75, help="Share of patches hidden from the model."),
    samples: str = typer.Option("val", help="val (the run's held-out plants) or all."),
    seed: int = typer.Option(0, help="Seed of the masks (draw d uses seed + d)."),
    draws: int = typer.Option(1, help="Masks per cube: `eval masks` then gives the model's "
                              "lead over each baseline a paired interval over cubes."),
    batch: int = typer.Option(8, help="Cubes per forward pass."),
    out_path: Path = typer.Option(None, "--out", "-o",
                                  help="The reconstruction store to write.",
                                  show_default="RUN/reconstruction.zarr"),
    drop_channels: str = typer.Option(
        None, help="Bands absent from the input altogether, by name or "
        "wavelength range (e.g. 750-900 for a sensor without near infrared): the model "
        "reconstructs every pixel of them; `eval masks` scores them apart."),
    log_every: int = log_every_option("cubes"),
    overwrite: bool = typer.Option(False, help="Replace an existing reconstruction."),
) -> None:
    """Hide a random share of each cube's patches and reconstruct every band of them.

    Example: [cyan]dchag predict masks --run runs/pretrain --data appl.zarr --mask-ratio 0.75[/]

    Without the near infrared: [cyan]dchag predict masks --run runs/pretrain --drop-channels
    750-900[/]

    Another sensor's bands: [cyan]dchag predict masks --run runs/pretrain --data b100.zarr[/]
    """
    from pipelines.data.zarr_store import check_writable_target
    from pipelines.eval.masks import absent_bands, predict_masks
    from pipelines.run.load import load_run, run_files

    if batch < 1:
        raise DchagError(f"--batch {batch} must be at least 1")
    spec = _drop_list(drop_channels, "band", "750-900 or 700.0nm,710.0nm")
    out_path = out_path or run / "reconstruction.zarr"
    check_writable_target(out_path, overwrite=overwrite, kinds=("reconstruction",),
                          inputs=[*run_files(run), data])
    trained = load_run(run, "mae", device())
    drop = absent_bands(trained, spec) if spec else []
    with RichProgress(log_every) as progress:
        n = predict_masks(trained, data, out_path, mask_ratio, samples, seed, batch, device(),
                          {"run": str(run.resolve()), "checkpoint_step": trained.step,
                           "provenance": provenance("predict masks", {
                               "mask_ratio": mask_ratio, "samples": samples,
                               "drop_channels": spec, "draws": draws}, [data], seed)},
                          progress, drop, draws)
    absent = f", {len(drop)} bands absent from the input" if drop else ""
    masks = f" under {draws} masks each" if draws > 1 else ""
    out.print(f"reconstructed {n // draws} cubes{masks} ({mask_ratio:.0%} of patches "
              f"masked{absent}) → "
              f"{out_path}")


@eval_app.command("masks")
@user_errors
def eval_masks_cmd(
    recon: Path = typer.Option(Path("runs/pretrain/reconstruction.zarr"),
                               help="reconstruction.zarr from `dchag predict masks`."),
    data: Path = typer.Option(Path("appl.zarr"), help="The appl.zarr it was predicted "
                              "from."),
    sample: int = typer.Option(0, help="Which reconstructed cube to draw."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder for mask_scores.zarr and "
                                 "the PNG.", show_default="next to the reconstruction"),
    log_every: int = log_every_option("cubes"),
) -> None:
    """Score reconstructions on the masked pixels beside five inpainting baselines: RMSE
    and MSE (reflectance), PSNR and SSIM per band, the spectral angle (SAM), NDVI and
    red-edge position errors on plant pixels, and the relative error per band.

    Example: [cyan]dchag eval masks --recon runs/pretrain/reconstruction.zarr --data appl.zarr[/]
    """
    from pipelines.eval.mask_scores import absent_lines, verdict_lines
    from pipelines.eval.mask_summary import summary_rows
    from pipelines.jobs.mask_eval import run_mask_eval

    with RichProgress(log_every) as progress:
        scores, out_dir, _ = run_mask_eval(recon, data, sample, out_dir, progress)
    draws = f" × {scores.draws} mask draws" if scores.draws > 1 else ""
    table = Table(title=f"masked-patch reconstruction: {scores.cubes} cubes{draws}, the "
                  "model beside "
                  "inpainting from the visible pixels (lower RMSE/SAM, higher PSNR/SSIM "
                  "is better)", title_justify="left")
    table.add_column("score")
    for name in scores.predictors:
        table.add_column(name.replace("_", " "), justify="right")
    for label, fmt, values in summary_rows(scores):
        table.add_row(label, *("" if np.isnan(v) else format(v, fmt) for v in values))
    out.print(table)
    for line in [*verdict_lines(scores), *absent_lines(scores)]:
        out.print(line)
    out.print(f"written: {out_dir / 'mask_scores.zarr'}, {out_dir / 'reconstruction.png'}, "
              f"{out_dir / 'spectra.png'}")


@eval_app.command("bands")
@user_errors
def eval_bands_cmd(
    run: Path = typer.Option(Path("runs/pretrain"), help="A run of `dchag pretrain`, or its "
                             "model file."),
    data: Path = typer.Option(Path("appl.zarr"), help="The appl.zarr it was trained on."),
    groups: int = typer.Option(25, help="Contiguous band groups of equal width: the "
                               "importance curve's resolution, and one candidate band each."),
    k: int = typer.Option(6, "--k", help="Score band subsets of 1 … k bands."),
    samples: str = typer.Option("val", help="val (the run's held-out plants; the other cubes "
                                "form the spectral library) or all."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder for band_importance.zarr "
                                 "and bands.png.", show_default="the run folder"),
    log_every: int = log_every_option("band subsets"),
) -> None:
    """Rank band groups by how much the model's error grows when each is absent, and pick
    the k bands that keep most of the spectrum: greedy picks (by the model, and by a
    low-rank fit of the training cubes' spectra) against evenly spaced and PCA-loading
    picks, each set rebuilt by the model and by the low-rank fit.

    Which 6 of 500 bands should a cheaper sensor keep?
    [cyan]dchag eval bands --run runs/pretrain --data appl.zarr --k 6[/]
    """
    from pipelines.eval.band_importance import verdict
    from pipelines.jobs.band_eval import run_band_eval
    from pipelines.run.load import load_run

    trained = load_run(run, "mae", device())
    out_dir = out_dir or (run if run.is_dir() else run.parent)
    with RichProgress(log_every) as progress:
        study = run_band_eval(trained, data, groups, k, samples, out_dir, device(), progress)
    for line in verdict(study):
        out.print(line)
    out.print(f"written: {out_dir / 'band_importance.zarr'}, {out_dir / 'bands.png'}")
