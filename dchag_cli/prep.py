"""`dchag prep …`: turn raw downloads into zarr artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from dchag_cli.console import (
    RichProgress,
    human_bytes,
    key_value_table,
    log_every_option,
    out,
    user_errors,
)
from pipelines.data.channels import DEFAULT_PRESET
from pipelines.data.options import REGRID_BACKENDS as BACKENDS
from pipelines.data.options import REGRID_METHODS as METHODS
from pipelines.data.options import parse_years
from pipelines.errors import DchagError
from pipelines.limits import MAX_RETRIES, check_at_most

app = typer.Typer(help="Prepare raw data as zarr artifacts.", no_args_is_help=True)


@app.command("era5")
@user_errors
def era5(
    sources: list[str] = typer.Argument(
        ..., help="ERA5 netCDF or GRIB files, WeatherBench 2 / ARCO zarr stores (folders, or "
        "gs://, s3://, https:// URLs with the cloud extra), folders of them, or CDS ZIP "
        "deliveries.", show_default=False),
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
    region: str = typer.Option(None, help="A regional store: SOUTH:NORTH,WEST:EAST in degrees, "
                               "e.g. 20:60,-130:-60 (default: global; non-global inputs are "
                               "refused without it)."),
    train_years: str = typer.Option(None, help="Years for mean/std and climatology, e.g. "
                                    "1979:2015 (default: all). Keep evaluation years out."),
    clim_window: int = typer.Option(61, help="Climatology window in days (odd; triangular "
                                    "weights, as WeatherBench 2)."),
    clim_hour_step: int = typer.Option(6, help="Climatology hours of day: every N hours "
                                       "(6 → 00, 06, 12, 18 UTC)."),
    allow_nan: bool = typer.Option(False, help="Keep NaN and ±inf values (counted, stored as "
                                   "NaN) instead of refusing."),
    allow_out_of_range: bool = typer.Option(False, help="Keep values outside a variable's "
                                            "physical range (e.g. t 150–350 K) instead of "
                                            "refusing them."),
    workers: int = typer.Option(0, help="Processes decoding the input in parallel (0: the "
                                "cores available, or 1 below 64 MiB of input).",
                                show_default="0 = auto"),
    period: str = typer.Option(None, help="Only these times, e.g. 2018, 2018-01:2018-03 or "
                               "2018-01-07T18:2018-01-08T12 (inclusive); nothing else is read.",
                               show_default="every time of the inputs"),
    member: int = typer.Option(None, help="The ensemble member to take from inputs with a "
                               "`number` dimension (ERA5 EDA GRIB).", show_default="none"),
    constants: list[Path] = typer.Option(
        None, "--constants", help="A file of constant fields (ERA5's invariant lsm and "
        "surface z, or any input holding lsm / orography); repeatable. Ask for them as "
        "channels: --channels …,lsm,orography,lat (lat needs no file).", show_default="none"),
    timeout: float = typer.Option(60.0, help="Remote stores: seconds without data before a "
                                  "request is given up (and retried)."),
    retries: int = typer.Option(5, help="Remote stores: retries of a failed request (HTTP "
                                "5xx/429, timeout, broken connection), with backoff."),
    deadline: float = typer.Option(600.0, help="Remote stores: seconds a request may take "
                                   "however steadily data trickles in; all attempts of one "
                                   "request stop after 3 × this, whatever --retries says."),
    log_every: int = log_every_option("time steps"),
    append: bool = typer.Option(False, help="Add later times to an existing store."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be read (times, "
                                 "channels, chunks and bytes per input) from metadata and "
                                 "coordinates alone, and stop."),
) -> None:
    """Regrid ERA5 to the WeatherBench 5.625° grid (32×64) and write [bold]era5.zarr[/].

    Accepts netCDF of both CDS naming generations (valid_time/pressure_level and
    time/level), packed int16 or float32 values; GRIB (the grib extra; --member for
    ensembles); WeatherBench 2 and ARCO-ERA5 zarr, local or by URL (--period reads and
    fetches only that span's chunks);
    latitude 90→-90 or -90→90, longitude 0..360 or -180..180. Constant fields (lsm,
    orography, lat) are channels broadcast over time: model inputs, not forecast targets.

    Example: [cyan]dchag prep era5 sample_data/era5 --preset sample-14 --out era5.zarr[/]
    """
    if append and overwrite:
        raise DchagError("--append and --overwrite exclude each other")
    from pipelines.data.era5_prep import Era5PrepConfig, prep_era5

    cfg = Era5PrepConfig(
        sources=source_list(sources, timeout, retries, deadline), out=out_path,
        preset=None if channels else preset, channels=channels,
        method=method, backend=backend, weights=weights, resolution=resolution,
        region=region, train_years=parse_years(train_years), clim_window=clim_window,
        clim_hour_step=clim_hour_step, allow_nan=allow_nan,
        allow_out_of_range=allow_out_of_range, append=append, overwrite=overwrite,
        workers=workers, period=period, member=member, constants=list(constants or []),
    )
    if dry_run:
        _print_dry_run(cfg)
        return
    with RichProgress(log_every) as progress:
        s = prep_era5(cfg, progress)
    rows = [
        ("store", str(s.out)),
        ("channels", str(s.channels)),
        ("times", f"{s.times}" + (f" (+{s.new_times} appended)" if append else "")),
        ("size on disk", human_bytes(s.bytes)),
        ("seconds", f"{s.seconds:.2f}"),
        ("fields/s", f"{s.fields_per_s:,.0f} ({s.workers} decoding "
                     f"process{'es' if s.workers > 1 else ''})"),
        ("regrid", f"{method} ({'weights file' if weights else backend})"),
    ]
    if s.fetched_bytes:
        rows.append(("fetched", f"{human_bytes(s.fetched_bytes)} from remote stores "
                     f"(the fields read: {human_bytes(s.selected_bytes)} as float32)"))
    if s.nan_values:
        rows.append(("missing values kept",
                     ", ".join(f"{k}: {v}" for k, v in s.nan_values.items())))
    out.print(key_value_table("prep era5", rows))


def _print_dry_run(cfg) -> None:
    from pipelines.data.era5_dry_run import dry_run

    plan = dry_run(cfg)
    first, last = (str(plan.times[i])[:16] for i in (0, -1))
    step = np.unique(np.diff(plan.times).astype("timedelta64[h]").astype(int)) \
        if plan.times.size > 1 else np.array([])
    shown = ", ".join(plan.channels[:8]) + (f", … ({len(plan.channels)})"
                                            if len(plan.channels) > 8 else "")
    out.print(key_value_table("prep era5 --dry-run", [
        ("times", f"{plan.times.size} ({first} … {last}"
                  + (f", every {', '.join(map(str, step))} h" if step.size else "") + ")"),
        ("channels", shown),
        ("grid", plan.grid),
        ("store", f"{human_bytes(plan.store_bytes)} of float32 before compression"),
    ]))
    for r in plan.sources:
        out.print(key_value_table(r.source, [
            ("channels", f"{len(r.channels)}"),
            ("times read", str(r.times)),
            ("fields read", f"{human_bytes(r.field_bytes)} as float32"),
            ("chunks", f"{r.chunks:,} touched, {human_bytes(r.chunk_bytes)} uncompressed "
                       "(the most a transfer can be)"),
        ]))
    out.print("nothing read beyond metadata and coordinates; nothing written")


def source_list(sources: list[str], timeout: float, retries: int,
                deadline: float = 600.0) -> list:
    """Local paths as `Path`, URLs as remote stores (a `Path` would fold their `//`)."""
    from pipelines.data.remote import RemoteZarr, is_url

    if timeout <= 0 or retries < 0 or not deadline > 0:
        raise DchagError(f"--timeout {timeout:g} and --deadline {deadline:g} must be > 0 and "
                         f"--retries {retries} ≥ 0")
    check_at_most(retries, MAX_RETRIES, "--retries", "with backoff, hours of waiting already")
    return [RemoteZarr(s, timeout_s=timeout, retries=retries, deadline_s=deadline)
            if is_url(s) else Path(s)
            for s in sources]


def _parse_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise DchagError(f"--range {text!r} is not FIRST:LAST in nm, e.g. 400:900") from exc
    return lo, hi


@app.command("appl")
@user_errors
def appl(
    sources: list[Path] = typer.Argument(
        ..., help="ENVI headers (or their binaries), folders of them, or a CSV manifest "
        "(path, plant_id, date, label).", show_default=False),
    out_path: Path = typer.Option(Path("appl.zarr"), "--out", "-o",
                                  help="The zarr store to write."),
    bands: int = typer.Option(500, help="Bands of the common spectral grid."),
    range_nm: str = typer.Option("400:900", "--range", help="Wavelength range in nm."),
    size: int = typer.Option(256, help="Output height and width in pixels."),
    spatial: str = typer.Option("resize", help="resize: centre square, anti-aliased resize; "
                                "crop: centre size×size window."),
    dtype: str = typer.Option("float16", help="float16 or float32."),
    ndvi: float = typer.Option(0.4, help="NDVI threshold of the plant mask."),
    min_plant_pixels: int = typer.Option(16, help="Smaller mask specks/holes are removed."),
    wavelengths: Path = typer.Option(None, help="Wavelengths (nm, one per line) for cubes "
                                     "whose header has none."),
    scale: float = typer.Option(None, help="Divide stored values by this (overrides the "
                                "header's reflectance scale factor)."),
    dark: Path = typer.Option(None, help="Dark reference cube (with --white)."),
    white: Path = typer.Option(None, help="White reference cube (with --dark)."),
    compress: bool = typer.Option(False, help="LZ4-compress the cubes (smaller, slower to "
                                  "load)."),
    log_every: int = log_every_option("cubes"),
    append: bool = typer.Option(False, help="Add samples to an existing store."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
) -> None:
    """Resample hyperspectral ENVI cubes to a common band grid and size; write [bold]appl.zarr[/].

    Reads bsq/bil/bip, either byte order, uint16 or float32, memory-mapped; applies the
    header's reflectance scale factor (or dark/white calibration); adds an NDVI plant mask.

    Example: [cyan]dchag prep appl sample_data/appl/manifest.csv --size 64 --out appl.zarr[/]
    """
    if append and overwrite:
        raise DchagError("--append and --overwrite exclude each other")
    from pipelines.data.appl_prep import ApplPrepConfig, prep_appl

    cfg = ApplPrepConfig(sources=sources, out=out_path, bands=bands,
                         range_nm=_parse_range(range_nm), size=size, spatial=spatial,
                         dtype=dtype, ndvi=ndvi, min_plant_pixels=min_plant_pixels,
                         wavelengths=wavelengths, scale=scale, dark=dark, white=white,
                         compress=compress, append=append, overwrite=overwrite)
    with RichProgress(log_every) as progress:
        s = prep_appl(cfg, progress)
    out.print(key_value_table("prep appl", [
        ("store", str(s.out)),
        ("samples", f"{s.samples}" + (f" (+{s.new_samples} appended)" if append else "")),
        ("cube", f"{s.bands} bands × {s.size}×{s.size}, {dtype}"),
        ("read", human_bytes(s.bytes_in)),
        ("size on disk", human_bytes(s.bytes_out)),
        ("seconds", f"{s.seconds:.2f}"),
        ("rate", f"{s.cubes_per_s:.2f} cubes/s, {s.mb_per_s:.1f} MB/s"),
    ]))
