"""The `dchag` root command, built with every stage or with the one stage a command line
names.

Importing every stage costs a second or more of start-up (torch, through `plan`, which
counts FLOPs with it), paid by every `prep` of a batch job. A command line that names a
stage imports that stage alone — `dchag prep era5 …` starts without torch — and
`dchag --help` or one naming no stage builds them all.
"""

from __future__ import annotations

import importlib

import typer

from pipelines import __version__

# name on the command line: (module in dchag_cli, its attribute, a group or one command)
STAGES: dict[str, tuple[str, str, bool]] = {
    "prep": ("prep", "app", True),
    "sample": ("sample", "app", True),
    "bench": ("bench", "app", True),
    "model": ("model", "app", True),
    "train": ("train", "app", True),
    "pretrain": ("train", "pretrain", False),
    "eval": ("evaluate", "eval_app", True),
    "predict": ("evaluate", "predict_app", True),
    "export": ("export", "app", True),
    "quickstart": ("quickstart", "quickstart", False),
    "recipe": ("recipe", "app", True),
    "plan": ("plan", "plan", False),
    "channels": ("info", "channels", False),
    "show": ("show", "show", False),
}

HELP = (
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
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dchag {__version__}")
        raise typer.Exit()


def _click_exceptions():
    """The exceptions of the click that typer runs on (typer 0.26 and later vendor one)."""
    base = next(c for c in typer.Context.__mro__[1:] if c.__name__ == "Context")
    return importlib.import_module(base.__module__.rsplit(".", 1)[0] + ".exceptions")


def run_stage(args: list[str]) -> int:
    """Run one `dchag` command line in this process with every stage, and return its exit
    code: what a recipe's chain calls (through the context, `recipes.STAGE_RUNNER`)."""
    click = _click_exceptions()
    try:
        # non-standalone click returns a typer.Exit's code instead of raising it
        code = command_tree(build()).main(args, prog_name="dchag", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except click.ClickException as exc:  # a usage error: printed as click would
        exc.show()
        code = exc.exit_code
    except typer.Abort:  # click's Abort, which typer's vendored click does not define
        code = 1
    return code if isinstance(code, int) else 0  # a command's return value: success


def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Root options shared by every stage."""
    from dchag_cli.recipes import STAGE_RUNNER

    ctx.meta[STAGE_RUNNER] = run_stage


def build(names: list[str] | None = None) -> typer.Typer:
    """The root with the stages `names` (all of them by default), in the help's order."""
    app = typer.Typer(name="dchag", help=HELP, rich_markup_mode="rich", no_args_is_help=True,
                      pretty_exceptions_show_locals=False,
                      context_settings={"help_option_names": ["-h", "--help"]})
    for name in names or list(STAGES):
        module, attribute, group = STAGES[name]
        stage = getattr(importlib.import_module(f"dchag_cli.{module}"), attribute)
        if group:
            app.add_typer(stage, name=name)
        else:
            app.command(name)(stage)
    app.callback()(root)
    return app


def command_tree(app: typer.Typer):
    """The click command tree with readable metavars (what `dchag` runs)."""
    from dchag_cli.console import readable_metavars

    command = typer.main.get_command(app)
    readable_metavars(command)
    return command


def command_for(argv: list[str]):
    """The command tree for these arguments: only the stage they name is imported."""
    stage = argv[0] if argv and argv[0] in STAGES else None
    return command_tree(build([stage] if stage else None))
