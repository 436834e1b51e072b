"""`dchag bench …`: measured speed and memory, written to files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

from dchag_cli.console import err, key_value_table, out, user_errors
from pipelines.bench.appl_bench import bench_appl
from pipelines.bench.regrid_bench import bench_prep_rate, bench_regrid

app = typer.Typer(help="Benchmarks; results are written to files.", no_args_is_help=True)

SAMPLE_ERA5 = Path(__file__).resolve().parent.parent / "sample_data" / "era5"


@app.command("regrid")
@user_errors
def regrid(
    fields: int = typer.Option(64, help="0.25° fields regridded by dchag per repeat."),
    xarray_fields: int = typer.Option(4, help="Fields given to xarray.interp (it is slow)."),
    repeats: int = typer.Option(3, help="Repeats; the best is reported."),
    sample: Path = typer.Option(SAMPLE_ERA5, help="ERA5 files for the end-to-end prep rate "
                                "(skipped if missing)."),
    out_path: Path = typer.Option(Path("bench_regrid.json"), "--out", "-o",
                                  help="Where to write the results (JSON)."),
) -> None:
    """Bilinear regrid of 0.25° ERA5-size fields (721×1440) to 32×64: dchag vs xarray.interp.

    Also measures end-to-end `prep era5` (netCDF decoding included) on the sample files.
    """
    err.print("benchmarking regrid of 721×1440 fields to 32×64 …")
    result = bench_regrid(fields=fields, xarray_fields=xarray_fields, repeats=repeats)
    if sample.exists():
        with tempfile.TemporaryDirectory() as tmp:
            result.prep_fields_per_s = bench_prep_rate([sample], "sample-14", Path(tmp))
    out_path.write_text(json.dumps(result.to_dict(), indent=2))
    rows = [
        ("dchag bilinear", f"{result.dchag_fields_per_s:,.0f} fields/s"),
        ("xarray.interp", f"{result.xarray_fields_per_s:,.1f} fields/s"),
        ("speed-up", f"{result.speedup:,.0f}×"),
        ("max |dchag - xarray|", f"{result.max_abs_diff_vs_xarray:.2e} (away from the seam)"),
    ]
    if result.prep_fields_per_s is not None:
        rows.append(("prep era5 end-to-end", f"{result.prep_fields_per_s:,.0f} fields/s "
                     f"on {sample}"))
    rows.append(("written", str(out_path)))
    out.print(key_value_table("bench regrid", rows))


@app.command("prep-appl")
@user_errors
def prep_appl_bench(
    cubes: int = typer.Option(8, help="Synthetic cubes to generate and convert."),
    source_size: int = typer.Option(256, help="Source cube height and width."),
    size: int = typer.Option(256, help="Stored height and width."),
    bands: int = typer.Option(500, help="Stored bands."),
    workers: int = typer.Option(0, help="DataLoader worker processes (0: read in the "
                                "training process, fastest for uncompressed stores)."),
    epochs: int = typer.Option(3, help="Passes over the store for the loader rate."),
    compress: bool = typer.Option(False, help="Benchmark an LZ4-compressed store."),
    out_path: Path = typer.Option(Path("bench_prep_appl.json"), "--out", "-o",
                                  help="Where to write the results (JSON)."),
) -> None:
    """ENVI → appl.zarr conversion rate (cubes/s, MB/s) and the training loader's read rate
    of appl.zarr (samples/s of float16 cubes).
    """
    err.print(f"generating {cubes} synthetic cubes and benchmarking …")
    r = bench_appl(cubes=cubes, source_size=source_size, size=size, bands=bands,
                   workers=workers, epochs=epochs, compress=compress)
    out_path.write_text(json.dumps(r.to_dict(), indent=2))
    out.print(key_value_table("bench prep-appl", [
        ("prep appl", f"{r.prep_cubes_per_s:.2f} cubes/s, {r.prep_mb_per_s:.0f} MB/s "
         f"({source_size}² × 252 bands → {size}² × {bands})"),
        ("loader", f"{r.loader_samples_per_s:.1f} samples/s, {r.loader_mb_per_s:,.0f} MB/s "
         f"({workers} workers)"),
        ("written", str(out_path)),
    ]))
