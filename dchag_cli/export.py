"""`dchag export …`: dchag artifacts in the layouts neighbouring tools read."""

from __future__ import annotations

from pathlib import Path

import typer

from dchag_cli.console import log_every_option, out, user_errors
from pipelines.errors import DchagError

app = typer.Typer(help="Write dchag artifacts in other tools' layouts (WeatherBench 2, "
                  "anemoi, safetensors).", no_args_is_help=True)


@app.command("weatherbench2")
@user_errors
def weatherbench2(
    predictions: Path = typer.Argument(..., help="predictions.zarr of `dchag eval forecast`."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The WeatherBench 2 forecast "
                                  "zarr to write."),
    overwrite: bool = typer.Option(False, help="Replace an earlier export."),
) -> None:
    """Forecasts in WeatherBench 2's layout: `time` (init), `prediction_timedelta`,
    `level`, `latitude`, `longitude`, one data variable per physical variable with CF
    units and long names — ready for WB2's evaluation beside published baselines.

    Example: [cyan]dchag export weatherbench2 runs/forecast/eval/predictions.zarr --out wb2.zarr[/]
    """
    import numpy as np

    from pipelines.data.zarr_store import check_writable_target, open_artifact, write_dataset
    from pipelines.eval.wb2 import to_wb2_dataset
    from pipelines.provenance import provenance

    if out_path.suffix != ".zarr":
        raise DchagError(f"--out {out_path} must end in .zarr (a zarr store)")
    group = open_artifact(predictions, "predictions")
    check_writable_target(out_path, overwrite=overwrite, kinds=("wb2_forecast",),
                          inputs=[predictions])
    ds = to_wb2_dataset(np.asarray(group["init_time"][:], np.int64),
                        [int(v) for v in group["lead"][:]],
                        [str(c) for c in group["channel"][:]], group["lat"][:],
                        group["lon"][:], group["prediction"][:], {
                            "dchag_artifact": "wb2_forecast",
                            "source": str(group.attrs.get("source", predictions)),
                            # the run, so `eval forecast --forecast` scores it by its periods
                            **({"dchag_run": str(group.attrs["run"])}
                               if group.attrs.get("run") else {}),
                            "provenance": provenance("export weatherbench2", {},
                                                     [predictions], seed=None)})
    write_dataset(ds, out_path)
    names = ", ".join(ds.data_vars)
    out.print(f"wrote {out_path}: {ds.sizes['time']} init times × "
              f"{ds.sizes['prediction_timedelta']} leads of {names}")
    if ds.attrs.get("levels_without_data"):
        out.print(f"no data (NaN planes of WB2's shared level dimension, listed in the "
                  f"attribute levels_without_data): {ds.attrs['levels_without_data']}")


@app.command("model")
@user_errors
def model(
    run: Path = typer.Argument(..., help="A run folder of `dchag pretrain` or `dchag train "
                               "forecast` (any --gpus/--tp layout)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The .safetensors file to write."),
    overwrite: bool = typer.Option(False, help="Replace an earlier export."),
) -> None:
    """One portable file from a sharded run: its newest intact checkpoint consolidated
    into plain tensors (safetensors: data only, never code), with the run's config,
    channels, normalisation and grid in the file's metadata.

    The file stands in for the run folder: [cyan]dchag eval forecast --run model.safetensors[/],
    [cyan]dchag predict masks --run model.safetensors[/], [cyan]dchag train forecast --init
    model.safetensors[/]. In Python: [cyan]safetensors.torch.load_file("model.safetensors")[/].

    Example: [cyan]dchag export model runs/forecast --out forecast.safetensors[/]
    """
    from dchag_cli.console import human_bytes, key_value_table
    from pipelines.data.zarr_store import check_writable_target
    from pipelines.locks import write_lock
    from pipelines.model_header import SUFFIX
    from pipelines.run.export import export_model
    from pipelines.run.load import run_files

    if out_path.suffix != SUFFIX:
        raise DchagError(f"--out {out_path} must end in {SUFFIX}")
    if not Path(run).is_dir():
        raise DchagError("not a run folder", path=run,
                         fix="pass the folder `dchag pretrain` or `dchag train` wrote")
    check_writable_target(out_path, overwrite=overwrite, kinds=("model",),
                          inputs=run_files(run))
    with write_lock(out_path):
        s = export_model(run, out_path)
    out.print(key_value_table("export model", [
        ("file", str(s.out)), ("checkpoint step", str(s.step)),
        ("tensors", f"{s.tensors} ({s.parameters:,} parameters)"),
        ("size", human_bytes(s.bytes))]))


@app.command("anemoi")
@user_errors
def anemoi(
    store: Path = typer.Argument(..., help="era5.zarr of `dchag prep era5`."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The anemoi-datasets zarr to "
                                  "write."),
    log_every: int = log_every_option("time steps"),
    overwrite: bool = typer.Option(False, help="Replace an earlier export."),
) -> None:
    """era5.zarr in anemoi-datasets' gridded layout: `data(dates, variables, ensembles,
    values)`, flattened latitudes/longitudes, exact statistics over the store's statistics
    years, and the attributes anemoi reads (variables, frequency, field_shape, dates,
    constant_fields, variables_metadata). Names follow anemoi's ERA5: z_500, 2t, 10u, 10v;
    orography becomes surface geopotential z.

    Then, with anemoi-datasets installed: [cyan]open_dataset("era5-anemoi.zarr")[/].

    Example: [cyan]dchag export anemoi era5.zarr --out era5-anemoi.zarr[/]
    """
    from dchag_cli.console import RichProgress
    from pipelines.data.anemoi_export import export_anemoi
    from pipelines.data.zarr_store import check_writable_target
    from pipelines.locks import write_lock

    if out_path.suffix != ".zarr":
        raise DchagError(f"--out {out_path} must end in .zarr (a zarr store)")
    check_writable_target(out_path, overwrite=overwrite, kinds=("anemoi",), inputs=[store])
    with write_lock(out_path), RichProgress(log_every) as progress:
        s = export_anemoi(store, out_path, progress)
    gaps = f", {s.missing} missing (NaN, listed in missing_dates)" if s.missing else ""
    out.print(f"wrote {out_path}: {s.dates} dates every {s.frequency_h} h{gaps} × "
              f"{s.variables} variables")
