"""`dchag model …`: what a model preset costs before you train it."""

from __future__ import annotations

import typer
from rich.table import Table

from dchag_cli.console import out, user_errors
from pipelines.errors import DchagError
from pipelines.model.config import PRESETS, VARIANTS, preset_config
from pipelines.model.info import estimate_memory, parameter_counts

app = typer.Typer(help="Inspect model presets: parameters and memory.", no_args_is_help=True)


def parse_size(text: str) -> tuple[int, int]:
    """`128x256` → (128, 256)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise DchagError(f"{text!r} is not HEIGHTxWIDTH, e.g. 32x64") from exc
    if h < 1 or w < 1:
        raise DchagError(f"{text!r}: height and width must be at least 1 pixel")
    return h, w


@app.command("info")
@user_errors
def info(
    preset: str = typer.Option("base", help=f"Model preset: {', '.join(PRESETS)}."),
    channels: int = typer.Option(80, help="Input channels (bands)."),
    variant: str = typer.Option("L", help=f"Aggregation: {', '.join(VARIANTS)}."),
    tree: int = typer.Option(0, help="Extra aggregation levels per channel group (0-2)."),
    groups: int = typer.Option(None, help="Channel groups G (default: 8 or fewer)."),
    img: str = typer.Option("128x256", help="Image size HEIGHTxWIDTH."),
    patch: int = typer.Option(4, help="Patch size."),
    task: str = typer.Option("mae", help="mae or forecast."),
    batch: int = typer.Option(2, help="Samples per rank, for the memory estimate."),
    tp: int = typer.Option(1, help="Tensor-parallel ranks, for the memory estimate."),
) -> None:
    """Parameter counts per component and an estimate of memory per rank.

    Example: [cyan]dchag model info --preset 7b --channels 500 --tp 8[/]
    """
    if task not in ("mae", "forecast"):
        raise DchagError(f"--task {task!r}: choose mae or forecast")
    if batch < 1 or tp < 1:
        raise DchagError("--batch and --tp must be at least 1")
    cfg = preset_config(preset, channels, variant=variant, tree=tree, groups=groups,
                        img_size=parse_size(img), patch=patch)
    if tp > cfg.n_groups and variant != "baseline":
        raise DchagError(f"--tp {tp} is more than the {cfg.n_groups} channel groups",
                         fix="raise --groups to a multiple of --tp")
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
    est = estimate_memory(cfg, batch=batch, tp=tp, task=task)
    mem = Table(title=f"estimated memory per rank: batch {batch}, tp {tp}, bf16 activations "
                "(see pipelines/model/info.py for the formulas)", title_justify="left")
    mem.add_column("part")
    mem.add_column("GiB", justify="right")
    for name, gb in est.activations_gb.items():
        mem.add_row(f"activations: {name}", f"{gb:.2f}")
    mem.add_row("parameters + grads + AdamW (fp32)", f"{est.optimizer_gb:.2f}")
    mem.add_row("total", f"{est.total_gb:.2f}", style="bold")
    out.print(mem)
