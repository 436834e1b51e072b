"""`dchag sample …`: synthetic inputs in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import typer

from dchag_cli.console import human_bytes, out, user_errors
from pipelines.data.channels import resolve_channels

app = typer.Typer(help="Write synthetic sample inputs in real formats.", no_args_is_help=True)


@app.command("era5")
@user_errors
def era5(
    out_dir: Path = typer.Option(Path("era5_sample"), "--out", "-o", help="Folder to write."),
    days: int = typer.Option(365, help="Days to generate."),
    step_hours: int = typer.Option(6, help="Hours between time steps."),
    start: str = typer.Option("2018-01-01", help="First time step (ISO date)."),
    resolution: float = typer.Option(2.5, help="Source grid spacing in degrees "
                                     "(ERA5 itself is 0.25)."),
    preset: str = typer.Option("sample-14", help="Channel preset (see `dchag channels`)."),
    channels: str = typer.Option(None, help="Explicit channel list instead of a preset."),
    split_days: int = typer.Option(None, help="Write one file pair per this many days, as "
                                   "monthly CDS downloads would be."),
    seed: int = typer.Option(0, help="Random seed (wave phases, noise)."),
) -> None:
    """Synthetic ERA5 in CDS layouts: pressure levels in the new layout (valid_time,
    float32, netCDF4), single levels in the old one (time, packed int16, netCDF3).

    Fields have realistic magnitudes, seasonal and diurnal cycles and eastward travelling
    waves, so forecasting is learnable and persistence is beatable.

    Example: [cyan]dchag sample era5 --out era5_raw --days 365[/]
    """
    from pipelines.sample.era5 import generate_era5

    chans = resolve_channels(None if channels else preset, channels)
    paths = generate_era5(out_dir, chans, start, days, step_hours, resolution, seed, split_days)
    size = sum(p.stat().st_size for p in paths)
    out.print(f"wrote {len(paths)} files ({human_bytes(size)}) to {out_dir}")


@app.command("appl")
@user_errors
def appl(
    out_dir: Path = typer.Option(Path("appl_sample"), "--out", "-o", help="Folder to write."),
    n: int = typer.Option(16, help="Number of plant cubes."),
    size: int = typer.Option(128, help="Height and width in pixels."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Synthetic potted plants as ENVI cubes (252 bands, 398–902 nm) with PROSPECT-D leaf
    spectra, prosail soil spectra, shading and sensor noise, plus manifest.csv.

    Layouts cycle through bsq/bil/bip, little/big endian, uint16 (×10000) and float32.

    Example: [cyan]dchag sample appl --out appl_raw --n 16 --size 128[/]
    """
    from pipelines.sample.appl import generate_appl

    paths = generate_appl(out_dir, n, size, seed)
    total = sum(p.with_suffix(".raw").stat().st_size for p in paths)
    out.print(f"wrote {len(paths)} cubes ({human_bytes(total)}) and manifest.csv to {out_dir}")
