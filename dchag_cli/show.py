"""`dchag show`: a PNG of an artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from dchag_cli.console import out, user_errors


@user_errors
def show(
    store: Path = typer.Argument(..., help="An appl.zarr artifact.", show_default=False),
    sample: int = typer.Option(0, help="Sample index."),
    out_path: Path = typer.Option(None, "--out", "-o",
                                  help="PNG to write (default: STORE-sample-N.png)."),
) -> None:
    """RGB composite (640/550/470 nm), plant mask, and mean spectra of plant vs background.

    Example: [cyan]dchag show appl.zarr --sample 3[/]
    """
    from pipelines.plots.appl import show_sample

    target = out_path or store.with_name(f"{store.stem}-sample-{sample}.png")
    out.print(f"wrote {show_sample(store, sample, target)}")
