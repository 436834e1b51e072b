"""`dchag prep …`: turn raw downloads into zarr artifacts."""

from __future__ import annotations

from pathlib import Path

import typer

from dchag_cli.console import RichProgress, human_bytes, key_value_table, out, user_errors
from pipelines.data.channels import DEFAULT_PRESET
from pipelines.data.era5_prep import Era5PrepConfig, parse_years, prep_era5
from pipelines.data.regrid import METHODS
from pipelines.data.regrid_backends import BACKENDS
from pipelines.errors import DchagError

app = typer.Typer(help="Prepare raw data as zarr artifacts.", no_args_is_help=True)


@app.command("era5")
@user_errors
def era5(
    sources: list[Path] = typer.Argument(
        ..., help="ERA5 netCDF files, folders of them, or CDS ZIP deliveries.", show_default=False),
    out_path: Path = typer.Option(Path("era5.zarr"), "--out", "-o",
                                  help="The zarr store to write."),
    preset: str = typer.Option(DEFAULT_PRESET, help="Channel preset (see `dchag channels`)."),
    channels: str = typer.Option(None, help="Explicit channels instead of a preset, e.g. "
                                 "z_500,t_850,t2m (long names work too)."),
    method: str = typer.Option("bilinear", help=f"Regrid method: {', '.join(METHODS)}."),
    backend: str = typer.Option("native", help=f"Regrid backend: {', '.join(BACKENDS)} "
                                "(xesmf needs esmpy from conda-forge)."),
    weights: Path = typer.Option(None, help="Apply a weights file written by xESMF (S,row,col) "
                                 "or CDO/SCRIP instead of computing weights."),
    resolution: float = typer.Option(5.625, help="Target grid spacing in degrees "
                                     "(5.625 → WeatherBench's 32×64)."),
    train_years: str = typer.Option(None, help="Years for mean/std and climatology, e.g. "
                                    "1979:2015 (default: all)."),
    clim_window: int = typer.Option(15, help="Climatology smoothing: ± days around each day."),
    allow_nan: bool = typer.Option(False, help="Keep NaN values (counted) instead of refusing."),
    append: bool = typer.Option(False, help="Add later times to an existing store."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
) -> None:
    """Regrid ERA5 netCDF to the WeatherBench 5.625° grid (32×64) and write [bold]era5.zarr[/].

    Accepts both CDS naming generations (valid_time/pressure_level and time/level),
    packed int16 or float32 values, latitude 90→-90 and longitude 0..360 or -180..180.

    Example: [cyan]dchag prep era5 sample_data/era5 --preset sample-14 --out era5.zarr[/]
    """
    if append and overwrite:
        raise DchagError("--append and --overwrite exclude each other")
    cfg = Era5PrepConfig(
        sources=sources, out=out_path, preset=None if channels else preset, channels=channels,
        method=method, backend=backend, weights=weights, resolution=resolution,
        train_years=parse_years(train_years), clim_window=clim_window, allow_nan=allow_nan,
        append=append, overwrite=overwrite,
    )
    with RichProgress() as progress:
        s = prep_era5(cfg, progress)
    rows = [
        ("store", str(s.out)),
        ("channels", str(s.channels)),
        ("times", f"{s.times}" + (f" (+{s.new_times} appended)" if append else "")),
        ("size on disk", human_bytes(s.bytes)),
        ("seconds", f"{s.seconds:.2f}"),
        ("fields/s", f"{s.fields_per_s:,.0f}"),
        ("regrid", f"{method} ({'weights file' if weights else backend})"),
    ]
    if s.nan_values:
        rows.append(("NaN values kept", ", ".join(f"{k}: {v}" for k, v in s.nan_values.items())))
    out.print(key_value_table("prep era5", rows))
