"""`dchag channels`: what the channel presets contain."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dchag_cli.console import out, user_errors
from pipelines.data.channels import DEFAULT_PRESET, PRESETS, VARIABLES, resolve_channels


@user_errors
def channels(
    preset: str = typer.Argument(None, help="A preset to show in full, or an era5.zarr / "
                                 "appl.zarr whose channels to list."),
) -> None:
    """List the ERA5 channel presets and supported variables (`--preset` of `prep era5`),
    or the channels of a prepared store.

    Example: [cyan]dchag channels era5.zarr[/]
    """
    if preset and (preset.endswith(".zarr") or Path(preset).is_dir()):
        _store_channels(Path(preset))
        return
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
        kind = ("pressure (VAR_hPa)" if v.pressure_level else
                "constant, from the grid" if v.computed else
                "constant (--constants FILE)" if v.constant else "single")
        variables.add_row(v.short, v.long, v.units, kind)
    out.print(variables)


def _store_channels(path: Path) -> None:
    import zarr

    from pipelines.data.zarr_store import open_artifact
    from pipelines.errors import DchagError

    kind = zarr.open_group(str(path), mode="r").attrs.get("dchag_artifact") \
        if path.exists() else None
    if kind not in ("era5", "appl"):
        raise DchagError("not an era5.zarr or appl.zarr", path=path)
    group = open_artifact(path, kind)
    constant: list[str] = []
    if kind == "era5":
        names = [str(n) for n in group.attrs["channels"]]
        constant = [str(n) for n in group.attrs.get("constant_channels", [])]
    else:
        from pipelines.data.bands import band_names

        names = band_names(group["wavelength"][:])
    out.print(f"[bold]{path}[/] ({kind}, {len(names)} channels): {', '.join(names)}")
    if constant:
        out.print(f"constant fields (inputs, not forecast targets): {', '.join(constant)}")
