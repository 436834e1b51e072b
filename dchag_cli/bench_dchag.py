"""`dchag bench memory|throughput` and the quick default sweep of `dchag bench`."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from rich.table import Table

from dchag_cli.console import err, human_bytes, out
from dchag_cli.model import parse_size
from pipelines.bench.dchag_bench import Case, run_fake, run_real_rank
from pipelines.data.zarr_store import check_writable_target, write_records
from pipelines.errors import DchagError
from pipelines.model.config import PRESETS, VARIANTS
from pipelines.plots.bench import plot_vs_channels
from pipelines.provenance import provenance
from pipelines.train.distributed import launch


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise DchagError(f"--{name} {text!r} is not a comma list of integers") from exc


def build_cases(presets: str, channels: str, variants: str, trees: str, tps: str, img: str,
                patch: int, batch: int) -> tuple[list[Case], list[str]]:
    """The sweep's cases, and notes on the combinations that cannot exist."""
    cases, skipped = [], []
    names = [p.strip() for p in presets.split(",") if p.strip()]
    for p in names:
        if p not in PRESETS:
            raise DchagError(f"unknown preset {p!r}", fix=f"choose from {', '.join(PRESETS)}")
    kinds = [v.strip() for v in variants.split(",") if v.strip()]
    for v in kinds:
        if v not in VARIANTS:
            raise DchagError(f"unknown variant {v!r}", fix=f"choose from {', '.join(VARIANTS)}")
    size = parse_size(img)
    for name, values in (("channels", _ints(channels, "channels")), ("tp", _ints(tps, "tp")),
                         ("trees", _ints(trees, "trees"))):
        if not values or min(values) < (0 if name == "trees" else 1):
            raise DchagError(f"--{name} {','.join(map(str, values))}: give positive values")
    if patch < 1 or batch < 1:
        raise DchagError("--patch and --batch must be at least 1")
    for preset, c, v, t, tp in itertools.product(names, _ints(channels, "channels"), kinds,
                                                 _ints(trees, "trees"), _ints(tps, "tp")):
        if v == "baseline" and t != _ints(trees, "trees")[0]:
            continue  # the baseline has no tree
        heads = PRESETS[preset]["heads"]
        if heads % tp:
            skipped.append(f"{preset} tp {tp} ({heads} heads)")
            continue
        cases.append(Case(preset, c, v, t if v != "baseline" else 0, tp, size, patch, batch))
    if not cases:
        raise DchagError("no valid case in the sweep", fix="; ".join(skipped))
    return cases, sorted(set(skipped))


def run_sweep(cases: list[Case], mode: str, warmup: int, steps: int, link_gbs: float,
              out_path: Path, title: str) -> list[dict]:
    check_writable_target(out_path, overwrite=True, kinds=("bench",))
    gpu = torch.cuda.is_available()
    device = torch.device("cuda", 0) if gpu else torch.device("cpu")
    dtype = torch.bfloat16 if gpu else torch.float32
    if mode == "auto":
        mode = "fake" if gpu else "real"
    if mode not in ("real", "fake"):
        raise DchagError(f"--mode {mode!r}: choose auto, real or fake")
    if mode == "real" and gpu and max(c.tp for c in cases) > torch.cuda.device_count():
        raise DchagError(f"--mode real needs {max(c.tp for c in cases)} GPUs, this machine has "
                         f"{torch.cuda.device_count()}", fix="use --mode fake")
    err.print(f"{title}: {len(cases)} cases, mode {mode} on {device.type}")
    records: list[dict] = []
    if mode == "fake":
        records = run_fake(cases, device, warmup, steps, link_gbs, dtype,
                           on_done=lambda r: err.print(f"  {_describe(r)}"))
    else:
        for tp, group in itertools.groupby(sorted(cases, key=lambda c: c.tp),
                                           key=lambda c: c.tp):
            batch = list(group)
            done = launch(run_real_rank, (batch, warmup, steps, link_gbs,
                                          str(dtype).removeprefix("torch.")), tp)
            for r in done:
                err.print(f"  {_describe(r)}")
            records += done
    _add_ratios(records)
    write_records(records, out_path, {
        "dchag_artifact": "bench", "mode": mode, "link_gbs": link_gbs,
        "memory": "CUDA max_memory_allocated" if gpu else "torch MemTracker peak",
        "comm": "modelled from bytes / link_gbs" if mode == "fake" else "measured (in step)",
        "provenance": provenance("bench", {"mode": mode, "warmup": warmup, "steps": steps,
                                           "link_gbs": link_gbs}, [], seed=0)}, dim="case")
    return records


def _describe(r: dict) -> str:
    if not r.get("fits", True):
        return f"{r['preset']} C={r['channels']} {r['variant']} tp {r['tp']}: out of memory"
    return (f"{r['preset']} C={r['channels']} {r['variant']}/tree{r['tree']} tp {r['tp']}: "
            f"{human_bytes(r['peak_mem_bytes'])}, {r['step_s'] * 1e3:.1f} ms/step")


def _add_ratios(records: list[dict]) -> None:
    """Memory and throughput relative to the baseline of the same preset, channels and tp."""
    base = {(r["preset"], r["channels"], r["tp"]): r for r in records
            if r["variant"] == "baseline" and r.get("fits", True)}
    for r in records:
        b = base.get((r["preset"], r["channels"], r["tp"]))
        ok = b is not None and r.get("fits", True)
        r["mem_vs_baseline"] = r["peak_mem_bytes"] / b["peak_mem_bytes"] if ok else None
        r["speed_vs_baseline"] = b["step_s"] / r["step_s"] if ok else None


def print_table(records: list[dict], title: str, out_path: Path) -> list[Path]:
    table = Table(title=f"{title} (mem: peak per rank; ×base, ×speed: vs pure TP; TFLOPS "
                  "per rank; comm: bytes sent per rank and step)", title_justify="left")
    for col in ("preset", "C", "variant", "tp", "mem/rank", "×base", "ms", "×speed",
                "samp/s", "TFLOPS", "MFU", "comm"):
        table.add_column(col, justify="right" if col not in ("preset", "variant") else "left")
    for r in records:
        fits = r.get("fits", True)
        variant = r["variant"] if r["variant"] == "baseline" else f"{r['variant']} tree{r['tree']}"
        ratio = r.get("mem_vs_baseline")
        speed = r.get("speed_vs_baseline")
        mfu = r.get("mfu")
        comm = r.get("comm_gather_bytes", 0) + r.get("comm_allreduce_bytes", 0)
        table.add_row(
            r["preset"], str(r["channels"]), variant, str(r["tp"]),
            human_bytes(r["peak_mem_bytes"]) if fits else "OOM",
            f"{ratio:.2f}" if ratio is not None else "",
            f"{r['step_s'] * 1e3:.1f}" if fits else "",
            f"{speed:.2f}" if speed is not None else "",
            f"{r['samples_per_s']:.1f}" if fits else "",
            f"{r['tflops_per_rank']:.3f}" if fits else "",
            f"{mfu:.0%}" if mfu is not None and mfu == mfu else "",
            human_bytes(comm) if fits else "")
    out.print(table)
    pngs = [plot_vs_channels(records, "peak_mem_bytes", "peak memory per rank (GiB)",
                             out_path.with_name(out_path.stem + "_memory.png"), 1 / 2**30),
            plot_vs_channels(records, "samples_per_s", "samples/s per TP group",
                             out_path.with_name(out_path.stem + "_throughput.png"))]
    fitting = _largest_fitting(records)
    for line in fitting:
        out.print(line)
    out.print(f"written: {out_path}, {pngs[0]}, {pngs[1]}")
    return pngs


def _largest_fitting(records: list[dict]) -> list[str]:
    """For 512 channels: the largest preset that fit, per variant (where 512 was swept on a
    GPU; a CPU has no memory limit worth reporting)."""
    order = list(PRESETS)
    lines: list[str] = []
    if all(r["device"] == "cpu" for r in records):
        return lines
    for variant in sorted({r["variant"] for r in records if r["channels"] == 512}):
        fit = [r["preset"] for r in records
               if r["channels"] == 512 and r["variant"] == variant and r.get("fits", True)]
        if fit:
            lines.append(f"largest preset that fits at 512 channels, {variant}: "
                         f"{max(fit, key=order.index)}")
    return lines
