"""`dchag model …`: what a model preset costs before you train it."""

from __future__ import annotations

import typer
from rich.table import Table

from dchag_cli.console import RichProgress, err, human_bytes, out, user_errors
from pipelines.errors import DchagError
from pipelines.model.config import PRESETS, VARIANTS, parse_size

app = typer.Typer(help="Inspect model presets: parameters and memory.", no_args_is_help=True)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n:,}"


@app.command("info")
@user_errors
def info(
    preset: str = typer.Option("base", help=f"Model preset: {', '.join(PRESETS)}."),
    channels: int = typer.Option(80, help="Input channels (bands)."),
    variant: str = typer.Option("L", help=f"Aggregation: {', '.join(VARIANTS)}."),
    tree: int = typer.Option(0, help="Extra aggregation levels per channel group (0-2)."),
    groups: int = typer.Option(None, help="Channel groups G.",
                               show_default="max(8, tp), at most the channels"),
    img: str = typer.Option("128x256", help="Image size HEIGHTxWIDTH."),
    patch: int = typer.Option(4, help="Patch size."),
    task: str = typer.Option("forecast", help="forecast or mae."),
    batch: int = typer.Option(2, help="Samples per rank."),
    tp: int = typer.Option(1, help="Tensor-parallel ranks."),
    dp: int = typer.Option(1, help="Data-parallel ranks (FSDP)."),
    channel_impl: str = typer.Option("fused", help="fused or direct channel stage."),
    ac: bool = typer.Option(True, "--ac/--no-ac", help="Activation checkpointing (blocks)."),
    ac_channels: bool = typer.Option(True, "--ac-channels/--no-ac-channels",
                                     help="Recompute the channel stage in the backward."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Plan the memory per "
                                "rank (fake tensors: nothing allocated; ~30 s for 1b)."),
) -> None:
    """Parameters per component and, from the memory planner, per-rank memory of one
    training step (bf16 compute, fp32 master weights, AdamW; batch per rank).

    Example: [cyan]dchag model info --preset 7b --channels 500 --tp 8[/]
    """
    if task not in ("mae", "forecast"):
        raise DchagError(f"--task {task!r}: choose mae or forecast")
    if batch < 1 or tp < 1 or dp < 1:
        raise DchagError("--batch, --tp and --dp must be at least 1")
    from pipelines.bench.case import Case
    from pipelines.bench.planner import plan
    from pipelines.model.info import parameter_counts
    from pipelines.parallel.tensor_parallel import check_tp

    size = parse_size(img)
    case = Case(preset, channels, variant, tree, tp, size, patch, batch, dp, channel_impl,
                "head-split", ac, ac_channels, task, groups)
    cfg = case.model_config()
    check_tp(cfg, tp)
    counts = parameter_counts(cfg, task)
    table = Table(title=f"{preset}: {channels} channels, variant {variant}, tree {tree}, "
                  f"G={cfg.n_groups}, D={cfg.embed_dim}, depth {cfg.depth}, heads {cfg.heads}",
                  title_justify="left")
    table.add_column("component")
    table.add_column("parameters", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}" + (f"  ({n / 1e9:.2f} B)" if n > 1e8 else ""),
                      style="bold" if name == "total" else None)
    out.print(table)
    if not memory:
        return
    err.print(f"planning one training step per rank on fake tensors (tp {tp}, dp {dp}) of "
              f"{_count(counts['total'])} parameters …")
    with RichProgress() as progress:
        r = plan(case, progress=progress)
    out.print(_memory_table(r, batch, tp, dp))


def _memory_table(r: dict, batch: int, tp: int, dp: int) -> Table:
    mem = Table(title=f"memory per rank, planned: batch {batch}, tp {tp}, dp {dp}, bf16 "
                f"compute, fp32 master weights and AdamW state, {r['aggregation_kind']}",
                title_justify="left")
    mem.add_column("part")
    mem.add_column("at the peak", justify="right")
    for key, label in (("params", "parameters"), ("grads", "gradients"),
                       ("optstate", "optimizer state"), ("activations", "activations"),
                       ("temp", "temporaries (backward)"), ("buffers", "buffers"),
                       ("other", "other")):
        mem.add_row(label, human_bytes(r[f"mem_{key}_bytes"]))
    mem.add_row("peak", human_bytes(r["peak_mem_bytes"]), style="bold")
    mem.add_row("TFLOP per rank and step", f"{r['flops_per_rank'] / 1e12:.3g}")
    return mem
