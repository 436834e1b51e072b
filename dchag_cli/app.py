"""`dchag`: the root command and its stages."""

from __future__ import annotations

import typer

from dchag_cli import (
    bench,
    evaluate,
    export,
    info,
    model,
    plan,
    prep,
    quickstart,
    recipe,
    sample,
    show,
    train,
)
from dchag_cli.console import readable_metavars
from pipelines import __version__

app = typer.Typer(
    name="dchag",
    help=(
        "Train many-channel vision-transformer foundation models with D-CHAG "
        "(Distributed Cross-Channel Hierarchical Aggregation).\n\n"
        "New here? [bold]dchag quickstart[/] runs the whole chain on the sample data.\n\n"
        "Every stage reads and writes zarr artifacts: "
        "[bold]prep[/] (ERA5 netCDF → era5.zarr, ENVI cubes → appl.zarr), "
        "[bold]pretrain[/] (MAE with distributed D-CHAG), "
        "[bold]train forecast[/] (weather forecasting), "
        "[bold]eval[/] / [bold]predict[/] (scores against baselines, reconstructions), "
        "[bold]export[/] (WeatherBench 2 layout), [bold]show[/] (a PNG of an artifact), "
        "[bold]sample[/] (synthetic inputs in real formats), "
        "[bold]model[/] (parameters and memory of a preset), "
        "[bold]bench[/] (speed and memory), [bold]channels[/] (channel presets)."
    ),
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(prep.app, name="prep")
app.add_typer(sample.app, name="sample")
app.add_typer(bench.app, name="bench")
app.add_typer(model.app, name="model")
app.add_typer(train.app, name="train")
app.command("pretrain")(train.pretrain)
app.add_typer(evaluate.eval_app, name="eval")
app.add_typer(evaluate.predict_app, name="predict")
app.add_typer(export.app, name="export")
app.command("quickstart")(quickstart.quickstart)
app.add_typer(recipe.app, name="recipe")
app.command("plan")(plan.plan)
app.command("channels")(info.channels)
app.command("show")(show.show)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dchag {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Root options shared by every stage."""


def cli():
    """The click command tree with readable metavars (what `dchag` runs)."""
    command = typer.main.get_command(app)
    readable_metavars(command)
    return command


def main() -> None:
    cli()(prog_name="dchag")
