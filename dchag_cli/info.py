"""`dchag channels`: what the channel presets contain."""

from __future__ import annotations

import typer
from rich.table import Table

from dchag_cli.console import out, user_errors
from pipelines.data.channels import DEFAULT_PRESET, PRESETS, VARIABLES, resolve_channels


@user_errors
def channels(
    preset: str = typer.Argument(None, help="Show one preset's channels in full."),
) -> None:
    """List the ERA5 channel presets and supported variables (`--preset` of `prep era5`)."""
    if preset:
        names = [c.name for c in resolve_channels(preset, None)]
        out.print(f"[bold]{preset}[/] ({len(names)} channels): {', '.join(names)}")
        return
    table = Table(title="channel presets", title_justify="left")
    table.add_column("preset", style="bold")
    table.add_column("channels", justify="right")
    table.add_column("what")
    for name, (what, chans) in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        table.add_row(name + default, str(len(chans)), what)
    out.print(table)
    variables = Table(title="variables (short name, long name, units)", title_justify="left")
    for col in ("short", "long", "units", "levels"):
        variables.add_column(col)
    for v in VARIABLES.values():
        variables.add_row(v.short, v.long, v.units, "pressure (VAR_hPa)" if v.pressure_level
                          else "single")
    out.print(variables)
