"""`dchag show`: a PNG of an artifact (appl.zarr or era5.zarr) and what it holds."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from dchag_cli.console import out, user_errors
from pipelines.errors import DchagError


@user_errors
def show(
    store: Path = typer.Argument(..., help="An appl.zarr or era5.zarr artifact.",
                                 show_default=False),
    sample: int = typer.Option(None, help="appl.zarr: sample index.", show_default="0"),
    channels: str = typer.Option(None, help="era5.zarr: channels to map, e.g. z_500,t2m.",
                                 show_default="the first four"),
    time: str = typer.Option(None, help="era5.zarr: the time to map, e.g. 2018-01-03T12.",
                             show_default="the first"),
    out_path: Path = typer.Option(None, "--out", "-o", help="PNG to write.",
                                  show_default="STORE-sample-N.png / STORE-TIME.png"),
) -> None:
    """appl.zarr: RGB composite (640/550/470 nm), plant mask, and mean spectra of plant vs
    background. era5.zarr: maps of the chosen channels at one time (units on the colour
    bars) and a table of each channel's units, normalisation mean and std, and range.

    Example: [cyan]dchag show appl.zarr --sample 3[/];
    [cyan]dchag show era5.zarr --channels z_500,t2m --time 2018-01-03T12[/]
    """
    import zarr

    kind = None
    with contextlib.suppress(Exception):  # not a store: the reader below names the problem
        kind = zarr.open_group(str(store), mode="r").attrs.get("dchag_artifact")
    if kind == "era5":
        if sample is not None:
            raise DchagError("--sample is for appl.zarr", path=store,
                             fix="for era5.zarr choose --channels and --time")
        _show_era5(store, channels, time, out_path)
        return
    if kind != "appl":
        what = f"a dchag {kind} store" if kind else "not a store dchag prep wrote"
        raise DchagError(f"{what}: `dchag show` draws appl.zarr and era5.zarr", path=store,
                         fix="pass a store written by `dchag prep appl` or `dchag prep era5`")
    if channels is not None or time is not None:
        raise DchagError("--channels and --time are for era5.zarr", path=store,
                         fix="for appl.zarr choose --sample")
    from pipelines.plots.appl import show_sample

    sample = sample or 0
    target = out_path or store.with_name(f"{store.stem}-sample-{sample}.png")
    out.print(f"wrote {show_sample(store, sample, target)}")


def _show_era5(store: Path, channels: str | None, time: str | None,
               out_path: Path | None) -> None:
    from rich.table import Table

    from pipelines.plots.era5 import show_era5

    chosen = [c.strip() for c in channels.split(",") if c.strip()] if channels is not None \
        else None
    if chosen == []:
        raise DchagError(f"--channels {channels!r} names no channel",
                         fix="give names like z_500,t2m (`dchag channels STORE` lists them)")
    target = out_path or store.with_name(f"{store.stem}-{(time or 'first').replace(':', '')}"
                                         ".png")
    png, stats, stamp = show_era5(store, chosen, time, target)
    table = Table(title=f"{store.name} at {stamp}", title_justify="left")
    for col in ("channel", "units", "mean (norm.)", "std (norm.)", "min", "max"):
        table.add_column(col, justify="left" if col in ("channel", "units") else "right")
    for s in stats:
        table.add_row(s.channel, s.units, f"{s.mean:.5g}", f"{s.std:.5g}",
                      f"{s.minimum:.5g}", f"{s.maximum:.5g}")
    out.print(table)
    out.print(f"wrote {png}")
