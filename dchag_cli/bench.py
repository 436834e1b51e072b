"""`dchag bench …`: measured speed and memory, written to files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

from dchag_cli.bench_dchag import build_cases, print_table, run_sweep
from dchag_cli.console import err, key_value_table, out, user_errors
from pipelines.bench.appl_bench import bench_appl
from pipelines.bench.regrid_bench import bench_prep_rate, bench_regrid
from pipelines.errors import DchagError

app = typer.Typer(help="Benchmarks; results are written to files. With no subcommand: a quick "
                  "D-CHAG vs pure-TP sweep (under a minute on a 2-core CPU).",
                  invoke_without_command=True)

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
    if min(fields, xarray_fields, repeats) < 1:
        raise DchagError("--fields, --xarray-fields and --repeats must be at least 1")
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


SWEEP_HELP = {
    "presets": "Model presets, comma-separated (tiny … 26b).",
    "channels": "Channel counts.",
    "variants": "baseline (pure TP), L, C.",
    "trees": "D-CHAG tree depths (0, 1, 2).",
    "tp": "Tensor-parallel sizes.",
    "mode": "real: tp processes; fake: rank 0 against a fake process group (one GPU "
            "measures tp 8; communication modelled); auto: fake on GPU, real on CPU.",
}


def _sweep(title: str, presets: str, channels: str, variants: str, trees: str, tp: str,
           img: str, patch: int, batch: int, mode: str, warmup: int, steps: int,
           link_gbs: float, out_path: Path) -> None:
    cases, skipped = build_cases(presets, channels, variants, trees, tp, img, patch, batch)
    if skipped:
        err.print(f"skipped (heads not divisible by tp): {', '.join(skipped)}")
    records = run_sweep(cases, mode, warmup, steps, link_gbs, out_path, title)
    print_table(records, title, out_path)


@app.callback()
@user_errors
def quick(ctx: typer.Context) -> None:
    """Without a subcommand: the quick sweep (small preset, 80 and 256 channels, baseline /
    L / C, tp 2 on real gloo ranks), written to bench.zarr."""
    if ctx.invoked_subcommand is None:
        _sweep("dchag bench (quick sweep)", "small", "80,256", "baseline,L,C", "0", "2",
               "32x64", 4, 2, "auto", 1, 3, 100.0, Path("bench.zarr"))


def _command(name: str, doc: str):
    @user_errors
    def command(
        presets: str = typer.Option("small", help=SWEEP_HELP["presets"]),
        channels: str = typer.Option("80,256,512,1024", help=SWEEP_HELP["channels"]),
        variants: str = typer.Option("baseline,L,C", help=SWEEP_HELP["variants"]),
        trees: str = typer.Option("0", help=SWEEP_HELP["trees"]),
        tp: str = typer.Option("2", help=SWEEP_HELP["tp"]),
        img: str = typer.Option("32x64", help="Image HEIGHTxWIDTH (weather 32x64; the "
                                "authors' protocol 128x256)."),
        patch: int = typer.Option(4, help="Patch size."),
        batch: int = typer.Option(2, help="Samples per rank."),
        mode: str = typer.Option("auto", help=SWEEP_HELP["mode"]),
        warmup: int = typer.Option(1, help="Untimed steps first."),
        steps: int = typer.Option(3, help="Timed steps (the median is reported)."),
        link_gbs: float = typer.Option(100.0, help="Link bandwidth (GB/s) for modelled "
                                       "communication in fake mode."),
        out_path: Path = typer.Option(Path("bench.zarr"), "--out", "-o",
                                      help="The tidy results table (zarr) and PNG prefix."),
    ) -> None:
        _sweep(f"dchag bench {name}", presets, channels, variants, trees, tp, img, patch,
               batch, mode, warmup, steps, link_gbs, out_path)

    command.__doc__ = doc
    return command


app.command("memory")(_command("memory", """Peak memory per rank: D-CHAG vs pure TP.

    Writes bench.zarr (one record per configuration: memory, step time, samples/s,
    tokens/s, TFLOPS, MFU, bytes communicated) and PNGs of memory and throughput vs
    channels. The paper's protocol on one GPU:
    [cyan]dchag bench memory --presets 1b,7b,15b,26b --channels 256,512,1024 --tp 8 --img 128x256[/]
    """))
app.command("throughput")(_command("throughput", """Step throughput per TP group: D-CHAG vs
    pure TP (same sweep and outputs as `dchag bench memory`).

    Example:
    [cyan]dchag bench throughput --presets 1b --channels 80,256,512,1024 --tp 2,4,8 --trees 0,1,2[/]
    """))
