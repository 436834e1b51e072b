"""`dchag bench memory|throughput` and the quick default sweep of `dchag bench`."""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from dchag_cli.console import human_bytes, out
from pipelines.model.config import PRESETS
from pipelines.plots.bench import plot_vs_channels


def _label(r: dict) -> str:
    kind = "baseline" if r["variant"] == "baseline" else f"{r['variant']} tree{r['tree']}"
    return f"{kind} · {r['aggregation_kind']}"


def describe_record(r: dict) -> str:
    head = f"{r['preset']} C={r['channels']} {_label(r)} tp {r['tp']} dp {r['dp']}"
    if not math.isfinite(r.get("peak_mem_bytes", math.nan)):
        return f"{head}: out of memory"
    time_ = f", {r['step_s'] * 1e3:.1f} ms/step" if math.isfinite(r["step_s"]) else ""
    return f"{head}: {human_bytes(r['peak_mem_bytes'])}{time_}"


def print_table(records: list[dict], title: str, out_path: Path) -> list[Path]:
    table = Table(title=f"{title} (mem: peak per rank; ×base: vs the strongest baseline; "
                  "TFLOP: per rank and step; comm: bytes sent per rank and step)",
                  title_justify="left")
    for col in ("preset", "C", "variant · aggregation", "tp", "dp", "mem/rank", "×base",
                "fits", "ms (min–max)", "×speed", "TFLOP", "chan. agg", "MFU", "comm"):
        table.add_column(col, justify="left" if col in ("preset", "variant · aggregation")
                         else "right")
    for r in records:
        done = math.isfinite(r.get("peak_mem_bytes", math.nan))
        timed = done and math.isfinite(r.get("step_s", math.nan))
        ratio, speed, mfu = r.get("mem_vs_baseline"), r.get("speed_vs_baseline"), r.get("mfu")
        table.add_row(
            r["preset"], str(r["channels"]), _label(r), str(r["tp"]), str(r["dp"]),
            human_bytes(r["peak_mem_bytes"]) if done else "OOM",
            f"{ratio:.2f}" if ratio is not None else "", "yes" if r.get("fits") else "no",
            _ms(r) if timed else "",
            f"{speed:.2f}" if speed is not None else "",
            f"{r['flops_per_rank'] / 1e12:.3g}", f"{r['flops_channel_agg'] / 1e12:.3g}",
            f"{mfu:.0%}" if mfu is not None and math.isfinite(mfu) else "",
            human_bytes(r.get("comm_bytes", 0)) if done else "")
    out.print(table)
    pngs = [plot_vs_channels(records, "peak_mem_bytes", "peak memory per rank (GiB)",
                             out_path.with_name(out_path.stem + "_memory.png"), 1 / 2**30)]
    if any(math.isfinite(r.get("samples_per_s", math.nan)) for r in records):
        pngs.append(plot_vs_channels(records, "samples_per_s", "samples/s per replica",
                                     out_path.with_name(out_path.stem + "_throughput.png")))
    for line in largest_fitting(records):
        out.print(line)
    out.print(f"written: {out_path}, {', '.join(map(str, pngs))}")
    return pngs


def _ms(r: dict) -> str:
    """Median step time in ms, with the min–max of the timed steps where measured."""
    text = f"{r['step_s'] * 1e3:.1f}"
    lo, hi = r.get("compute_s_min", math.nan), r.get("compute_s_max", math.nan)
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        comm = r.get("comm_s_modelled", 0.0) or 0.0
        text += f" ({(lo + comm) * 1e3:.1f}–{(hi + comm) * 1e3:.1f})"
    return text


def largest_fitting(records: list[dict]) -> list[str]:
    """Per variant and channel count: the largest preset that fits the memory limit
    (only where a limit means something: a GPU, or the planner's --memory-limit)."""
    order = list(PRESETS)
    lines: list[str] = []
    relevant = [r for r in records if r["mode"] == "estimate" or r["device"] != "cpu"]
    for (variant, channels) in sorted({(r["variant"], r["channels"]) for r in relevant}):
        rows = [r for r in relevant if (r["variant"], r["channels"]) == (variant, channels)]
        fit = [r["preset"] for r in rows if r.get("fits")]
        limit = human_bytes(rows[0].get("memory_limit_bytes", math.nan))
        best = max(fit, key=order.index) if fit else "none"
        lines.append(f"largest preset that fits {limit} per rank at {channels} channels, "
                     f"{variant}: {best}")
    return lines
