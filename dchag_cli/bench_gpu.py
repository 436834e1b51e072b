"""`dchag bench gpu`: planner vs measured peak, bf16 MFU eager and compiled, channel-stage
times — one command, one file."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dchag_cli.console import err, out, user_errors
from pipelines.errors import DchagError
from pipelines.fsops import write_json


def _gib(v: float) -> str:
    return f"{v / 2**30:.3f} GiB"


def describe(row: dict) -> str:
    if row["kind"] == "memory":
        return (f"memory  {row['preset']} {row['channels']} ch tp {row['tp']} "
                f"{row['variant']}/{row['channel_impl']}: planner {_gib(row['planner_peak_bytes'])}"
                f", measured {_gib(row['measured_peak_bytes'])} "
                f"({row['planner_over_measured']:.3f}×)")
    if row["kind"] == "mfu":
        mfu = f", MFU {row['mfu']:.1%}" if row["mfu"] is not None else ""
        return (f"step    {row['preset']} {row['dtype']} "
                f"{'compiled' if row['compiled'] else 'eager'}: {row['step_s'] * 1e3:.1f} ms "
                f"(first {row['first_step_s']:.1f} s), {row['tflops']:.3g} TFLOP/s{mfu}")
    return (f"channel {row['channels']} ch {row['variant']}/{row['channel_impl']}: "
            f"{row['step_s'] * 1e3:.2f} ms [{row['min_s'] * 1e3:.2f}, "
            f"{row['max_s'] * 1e3:.2f}]")


@user_errors
def gpu(
    smoke: bool = typer.Option(False, "--smoke", help="Tiny sizes in fp32: the same code on "
                               "a CPU in about a minute (MFU left empty)."),
    out_path: Path = typer.Option(Path("gpu.json"), "--out", "-o",
                                  help="Results: {\"rows\": [...]}, one per measurement."),
) -> None:
    """On one GPU, in at most 8 minutes: the memory planner against CUDA's measured peak
    (strongest baseline folded, baseline fused, D-CHAG-L, D-CHAG-C; two sizes, one rank of
    TP 8), bf16 step time, TFLOP/s and MFU of the 1b preset eager and with --compile, and
    the channel stage's time for direct, fused and folded at 512 and 1024 channels.

    Example: [cyan]dchag bench gpu --out gpu.json[/]   (CPU test: [cyan]--smoke[/])
    """
    import torch

    from pipelines.bench.gpu_bench import run_gpu_bench

    if not torch.cuda.is_available() and not smoke:
        raise DchagError("no GPU here", fix="run it on a GPU machine, or pass --smoke to "
                         "test the same code on this CPU at tiny sizes")
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
        else torch.device("cpu")
    t0 = time.perf_counter()
    rows = run_gpu_bench(smoke, device, lambda row: err.print(describe(row), soft_wrap=True))
    write_json(out_path, {"rows": rows, "seconds": time.perf_counter() - t0})
    worst = max(abs(r["planner_over_measured"] - 1) for r in rows if r["kind"] == "memory")
    out.print(f"{len(rows)} rows on {rows[0]['device']} in {time.perf_counter() - t0:.0f} s; "
              f"planner within {worst:.1%} of the measured peak in every memory row → "
              f"{out_path}")
