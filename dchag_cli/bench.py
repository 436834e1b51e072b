"""`dchag bench …`: measured speed and memory, written to files."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from dchag_cli.bench_gpu import gpu
from dchag_cli.bench_parity import parity
from dchag_cli.console import err, key_value_table, out, reflow, user_errors
from pipelines.bench.comm import Link
from pipelines.errors import DchagError
from pipelines.fsops import write_json

app = typer.Typer(help="Benchmarks; results are written to files. With no subcommand: a quick "
                  "D-CHAG vs pure-TP sweep (under a minute on a 2-core CPU).",
                  invoke_without_command=True)

@app.command("regrid")
@user_errors
def regrid(
    fields: int = typer.Option(64, help="0.25° fields per method and repeat."),
    xarray_fields: int = typer.Option(4, help="Fields given to xarray.interp (it is slow)."),
    repeats: int = typer.Option(5, help="Interleaved repeats; the median is reported."),
    out_path: Path = typer.Option(Path("bench_regrid.json"), "--out", "-o",
                                  help="Where to write the results (JSON)."),
) -> None:
    """Bilinear regrid of 0.25° ERA5-size fields (721×1440) to 32×64 on one core: dchag,
    dchag with a weights file, scipy CSR (batched and field by field), pydata-sparse (the
    xESMF ≥ 0.8 apply) and xarray.interp, on the same fields, next to the memory-bandwidth
    limit measured on this machine.

    Example: [cyan]dchag bench regrid --fields 64 --repeats 5[/]
    """
    if min(fields, xarray_fields, repeats) < 1:
        raise DchagError("--fields, --xarray-fields and --repeats must be at least 1")
    from pipelines.bench.regrid_bench import bench_regrid

    err.print(f"benchmarking the regrid of {fields} 721×1440 fields to 32×64 "
              f"({repeats} interleaved repeats) …")
    result = bench_regrid(fields=fields, xarray_fields=xarray_fields, repeats=repeats)
    write_json(out_path, result.to_dict())
    mine = result.fields_per_s["dchag"]
    rows = [(name, f"{rate:,.0f} fields/s ({rate / mine:.2f}× dchag)" if rate else
             "not installed") for name, rate in result.fields_per_s.items()]
    rows += [
        ("read bandwidth (1 core)", f"{result.bandwidth_gb_per_s:.1f} GB/s"),
        ("bytes a field must read", f"{result.bytes_read_per_field / 1e3:,.0f} kB (the "
         "source rows its weights touch)"),
        ("bandwidth limit", f"{result.bandwidth_limit_fields_per_s:,.0f} fields/s; dchag "
         f"at {result.dchag_share_of_limit:.0%}"),
        ("dchag vs the best peer", f"{result.dchag_vs_best_peer:.2f}× ({result.best_peer})"),
        ("--weights FILE vs native", f"{result.weights_file_vs_native:.2f}×"),
        ("max |dchag − scipy|", f"{result.max_abs_diff_vs_scipy:.1e} (same weights)"),
        ("max |dchag − xarray|", f"{result.max_abs_diff_vs_xarray:.1e} (away from the "
         "seam)"),
        ("written", str(out_path)),
    ]
    for text in result.notes:
        err.print(f"[yellow]note:[/] {text}")
    out.print(key_value_table("bench regrid", rows))


@app.command("prep-era5")
@user_errors
def prep_era5_bench(
    sources: list[Path] = typer.Argument(..., help="ERA5 netCDF files or folders (e.g. "
                                         "`dchag sample era5 --resolution 0.25`)."),
    channels: str = typer.Option("z_500,t_850,u_850,t2m,u10,v10", help="Channels to "
                                 "prepare (and decode)."),
    workers: int = typer.Option(0, help="Processes for both (0: the cores available).",
                                show_default="0 = all cores"),
    out_path: Path = typer.Option(Path("bench_prep_era5.json"), "--out", "-o",
                                  help="Where to write the results (JSON)."),
) -> None:
    """`prep era5` end to end against the plain decode (open, decompress, unpack every
    needed field) of the same files with the same number of processes.

    Example: [cyan]dchag bench prep-era5 q25[/] (after `dchag sample era5 --resolution
    0.25 --days 4 --split-days 1 --out q25`)
    """
    from pipelines.bench.prep_era5_bench import bench_prep_era5
    from pipelines.data.era5_blocks import available_cores

    if workers < 0:
        raise DchagError(f"--workers {workers} must be 0 (all cores) or more")
    workers = workers or available_cores()
    err.print(f"decoding, then preparing, with {workers} process(es) …")
    r = bench_prep_era5(sources, channels, workers)
    write_json(out_path, r.to_dict())
    out.print(key_value_table("bench prep-era5", [
        ("input", f"{r.files} files, {r.channels} channels, {r.fields} fields"),
        ("processes", str(r.workers)),
        ("plain decode", f"{r.decode_fields_per_s:,.1f} fields/s ({r.decode_seconds:.1f} s)"),
        ("prep era5", f"{r.prep_fields_per_s:,.1f} fields/s ({r.prep_seconds:.1f} s)"),
        ("prep / decode", f"{r.prep_vs_decode:.2f}×"),
        ("written", str(out_path)),
    ]))


@app.command("prep-appl")
@user_errors
def prep_appl_bench(
    cubes: int = typer.Option(8, help="Synthetic cubes to generate and convert."),
    source_size: int = typer.Option(256, help="Source cube height and width."),
    size: int = typer.Option(256, help="Stored height and width."),
    bands: int = typer.Option(500, help="Stored bands."),
    workers: int = typer.Option(2, help="Loader worker processes (training's --workers)."),
    steps: int = typer.Option(12, help="Loader steps timed."),
    preset: str = typer.Option("small", help="The model whose training rate the loader "
                               "must keep up with."),
    patch: int = typer.Option(16, help="Patch size of that model."),
    batch: int = typer.Option(8, help="Global batch (training's --batch-size)."),
    compress: bool = typer.Option(False, help="Benchmark an LZ4-compressed store."),
    out_path: Path = typer.Option(Path("bench_prep_appl.json"), "--out", "-o",
                                  help="Where to write the results (JSON)."),
) -> None:
    """ENVI → appl.zarr conversion rate; the rate of the loader training uses (its own
    dataset, worker processes and prefetch) next to the zarr band-list read training used
    before; and the samples per second one training step of --preset takes here.

    Example: [cyan]dchag bench prep-appl --preset small --batch 8 --workers 2[/]
    """
    if min(cubes, source_size, size, bands, steps, patch, batch) < 1 or workers < 0:
        raise DchagError("sizes, --steps, --patch and --batch must be at least 1, "
                         "--workers at least 0")
    from pipelines.bench.appl_bench import bench_appl

    err.print(f"generating {cubes} synthetic cubes, then timing prep, the training loader "
              f"and a {preset} training step …")
    r = bench_appl(cubes=cubes, source_size=source_size, size=size, bands=bands,
                   workers=workers, steps=steps, compress=compress, preset=preset,
                   patch=patch, batch=batch)
    write_json(out_path, r.to_dict())
    out.print(key_value_table("bench prep-appl", [
        ("prep appl", f"{r.prep_cubes_per_s:.2f} cubes/s, {r.prep_mb_per_s:.0f} MB/s "
         f"({source_size}² × 252 bands → {size}² × {bands})"),
        ("training loader", f"{r.loader_samples_per_s:.1f} samples/s, "
         f"{r.loader_mb_per_s:,.0f} MB/s ({workers} workers, batch {batch})"),
        ("zarr band-list read", f"{r.band_list_samples_per_s:.1f} samples/s (loader "
         f"{r.loader_samples_per_s / r.band_list_samples_per_s:.1f}× faster)"),
        (f"{preset} training consumes", f"{r.consume_samples_per_s:.1f} samples/s (fp32, "
         "one process, this machine)"),
        ("loader / consumption", f"{r.loader_vs_consumption:.1f}×"),
        ("written", str(out_path)),
    ]))


SWEEP_HELP = {
    "presets": "Model presets, comma-separated (tiny … 26b).",
    "channels": "Channel counts.",
    "variants": "baseline (pure TP), L, C.",
    "trees": "D-CHAG tree depths (0, 1, 2).",
    "tp": "Tensor-parallel sizes.",
    "dp": "Data-parallel sizes (FSDP shards parameters, gradients and optimizer state).",
    "mode": "real: tp·dp processes; fake: rank 0 against a fake process group (one GPU "
            "measures tp 8; communication modelled); estimate: the memory planner (fake "
            "tensors, nothing allocated, any preset on any machine); auto: fake on a GPU, "
            "real on a CPU.",
    "impl": "Channel-stage implementations to compare: fused, folded, direct; auto: the "
            "baseline in folded (its strongest) and fused, D-CHAG in fused.",
    "aggregation": "How the all-input aggregation runs under TP: head-split (the authors' "
                   "and the fair baseline), replicated.",
}


def _sweep(title: str, presets: str, channels: str, variants: str, trees: str, tp: str,
           dp: str, img: str, patch: int, batch: int, mode: str, impl: str,
           aggregation: str, ac: bool, ac_channels: bool, precision: str, warmup: int,
           steps: int, link: Link, memory_limit: float, out_path: Path,
           compile_blocks: bool = False, task: str = "forecast") -> None:
    from dchag_cli.bench_dchag import describe_record, print_table
    from pipelines.bench.sweep import build_cases, run_sweep

    cases, skipped = build_cases(presets, channels, variants, trees, tp, img, patch, batch, dp,
                                 impl, aggregation, ac, ac_channels, compile_blocks, task)
    if skipped:
        err.print(f"skipped (heads not divisible by tp): {', '.join(skipped)}")
    if compile_blocks and mode == "estimate":
        raise DchagError("--compile with --estimate: the planner traces no compiled code",
                         fix="plan without --compile (compiling does not change the plan's "
                         "tensors), or measure with --mode fake")
    if warmup < 1 or steps < 1 or memory_limit <= 0:
        raise DchagError("--warmup and --steps must be at least 1, --memory-limit positive")
    records = run_sweep(cases, mode, warmup, steps, link, memory_limit, out_path, precision,
                        on_start=lambda line: err.print(f"{title}: {line}"),
                        on_done=lambda r: err.print(f"  {describe_record(r)}"))
    print_table(records, title, out_path)


def _link(name: str, gbs: float, latency_us: float) -> Link:
    if not gbs > 0 or not latency_us >= 0:
        raise DchagError("--link-gbs must be positive and --link-latency-us not negative")
    return Link(name, gbs, latency_us)


@app.callback()
@user_errors
def quick(ctx: typer.Context) -> None:
    """Without a subcommand: the quick sweep (small preset, 80 and 256 channels, baseline /
    L / C, the fused, folded and direct channel stages, tp 2 on real gloo ranks), written
    to bench.zarr."""
    if ctx.invoked_subcommand is None:
        _sweep("dchag bench (quick sweep)", "small", "80,256", "baseline,L,C", "0", "2", "1",
               "32x64", 4, 2, "auto", "fused,folded,direct", "head-split", True, True, "auto",
               1, 3,
               _link(LINK_NAME, 100.0, 5.0), 64.0, Path("bench.zarr"))


LINK_NAME = "assumed link"


def _sweep_options(
    presets: str = typer.Option("small", help=SWEEP_HELP["presets"]),
    channels: str = typer.Option("80,256,512,1024", help=SWEEP_HELP["channels"]),
    variants: str = typer.Option("baseline,L,C", help=SWEEP_HELP["variants"]),
    trees: str = typer.Option("0", help=SWEEP_HELP["trees"]),
    tp: str = typer.Option("2", help=SWEEP_HELP["tp"]),
    dp: str = typer.Option("1", help=SWEEP_HELP["dp"]),
    img: str = typer.Option("32x64", help="Image HEIGHTxWIDTH (weather 32x64; the "
                            "authors' protocol 128x256)."),
    patch: int = typer.Option(4, help="Patch size."),
    batch: int = typer.Option(2, help="Samples per rank (the authors use 2)."),
    mode: str = typer.Option("auto", help=SWEEP_HELP["mode"]),
    estimate: bool = typer.Option(False, "--estimate", help="Same as --mode estimate: "
                                  "plan memory without allocating anything."),
    channel_impl: str = typer.Option("auto", help=SWEEP_HELP["impl"]),
    task: str = typer.Option("forecast", help="forecast (the authors' ERA5 model, 5 "
                             "outputs) or mae (75% of patches masked)."),
    aggregation: str = typer.Option("head-split", help=SWEEP_HELP["aggregation"]),
    ac: bool = typer.Option(True, "--ac/--no-ac", help="Activation checkpointing per "
                            "transformer block (the authors' protocol: on)."),
    ac_channels: bool = typer.Option(True, "--ac-channels/--no-ac-channels",
                                     help="Recompute the channel stage in the backward "
                                     "pass (protocol: on)."),
    compile_blocks: bool = typer.Option(False, "--compile/--no-compile",
                                        help="torch.compile each transformer block, as "
                                        "`--compile` in training (real and fake "
                                        "modes; the first, untimed steps compile)."),
    precision: str = typer.Option("auto", help="Compute dtype: bf16 (the protocol; "
                                  "auto on GPUs and for --estimate), fp32 (auto for "
                                  "real CPU steps). Master weights stay fp32."),
    warmup: int = typer.Option(1, help="Untimed steps first."),
    steps: int = typer.Option(3, help="Timed steps (the median is reported)."),
    link_name: str = typer.Option(LINK_NAME, help="Name of the link the communication "
                                  "model assumes (printed beside every modelled time)."),
    link_gbs: float = typer.Option(100.0, help="Its bandwidth per direction, GB/s."),
    link_latency_us: float = typer.Option(5.0, help="Its latency per ring step, µs."),
    memory_limit: float = typer.Option(64.0, help="GiB per rank a case must fit in "
                                       "(--estimate; on a GPU its own memory counts). "
                                       "64: the authors' Frontier GCD."),
    out_path: Path = typer.Option(Path("bench.zarr"), "--out", "-o",
                                  help="The tidy results table (zarr) and PNG prefix."),
    title: str = "dchag bench",
) -> None:
    """The options every sweep command takes (`_command` names the command: `title`)."""
    _sweep(title, presets, channels, variants, trees, tp, dp, img, patch,
           batch, "estimate" if estimate else mode, channel_impl, aggregation, ac,
           ac_channels, precision, warmup, steps,
           _link(link_name, link_gbs, link_latency_us), memory_limit, out_path,
           compile_blocks, task)


def _command(name: str, doc: str, default_mode: str = "auto") -> Callable:
    """A sweep command: `_sweep_options` under its own name, help and default --mode."""
    def command(**given: Any) -> None:
        _sweep_options(**given, title=f"dchag bench {name}")

    sig = inspect.signature(_sweep_options, eval_str=True)
    command.__signature__ = sig.replace(parameters=[  # type: ignore[attr-defined]
        p.replace(default=typer.Option(default_mode, help=SWEEP_HELP["mode"]))
        if p.name == "mode" else p for p in sig.parameters.values() if p.name != "title"])
    command.__doc__ = reflow(doc)
    return user_errors(command)


app.command("parity")(parity)
app.command("gpu")(gpu)
app.command("memory")(_command("memory", """Peak memory per rank: D-CHAG vs the strongest
    pure-TP baseline, on the authors' protocol (FSDP mixed precision, activation
    checkpointing, AdamW foreach, batch 2 per rank).

    Writes bench.zarr (one record per configuration: preset, channels, variant, tree, tp,
    dp, img, patch, batch, mode, peak_mem_bytes, reserved_bytes, flops_per_rank and its
    components, step_s, fits, baseline_kind, …) and PNGs. The memory planner, on any
    machine (about 30 s per 1b case on 2 CPU cores):
    [cyan]dchag bench memory --estimate --presets 1b --channels 512,1024 --tp 8 --img 128x256[/]
    """))
app.command("throughput")(_command("throughput", """Step throughput per replica: D-CHAG vs
    the strongest pure-TP baseline (same sweep and outputs as `dchag bench memory`).

    Example:
    [cyan]dchag bench throughput --presets 1b --channels 80,256,512,1024 --tp 2,4,8 --trees 0,1,2[/]
    """))
