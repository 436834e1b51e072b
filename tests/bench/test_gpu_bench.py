"""`dchag bench gpu --smoke`: the GPU bench's code path, run on the CPU at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.runner import app, one_error_line, runner


@pytest.mark.slow
def test_gpu_bench_smoke_writes_every_row_and_the_planner_matches(tmp_path):
    out = tmp_path / "gpu.json"
    r = runner.invoke(app, ["bench", "gpu", "--smoke", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["rows"]
    memory = [x for x in rows if x["kind"] == "memory"]
    assert {(x["variant"], x["channel_impl"]) for x in memory} == {
        ("baseline", "folded"), ("baseline", "fused"), ("L", "fused"), ("C", "fused")}
    for x in memory:
        assert x["measured_peak_bytes"] > 0
        assert x["planner_peak_bytes"] == pytest.approx(x["measured_peak_bytes"], rel=0.10)
    steps = [x for x in rows if x["kind"] == "mfu"]
    assert [x["compiled"] for x in steps] == [False, True]
    assert all(x["step_s"] > 0 and x["tflops"] > 0 and x["mfu"] is None for x in steps)
    stage = [x for x in rows if x["kind"] == "channel_stage"]
    assert {x["channel_impl"] for x in stage} == {"direct", "fused", "folded"}
    assert len({x["channels"] for x in stage}) == 2
    assert "planner within" in r.output


def test_gpu_bench_refuses_a_cpu_without_smoke(tmp_path):
    r = runner.invoke(app, ["bench", "gpu", "--out", str(tmp_path / "g.json")])
    assert r.exit_code == 1 and "--smoke" in one_error_line(r.output)
    assert not (tmp_path / "g.json").exists()


def test_the_gpu_bench_needs_no_zarr_netcdf_or_spectral():
    code = ("import sys\n"
            "for m in ('zarr', 'netCDF4', 'spectral'): sys.modules[m] = None\n"
            "import pipelines.bench.gpu_bench, pipelines.bench.dchag_bench\n"
            "import dchag_cli.bench_gpu\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_planner_refuses_compile_and_says_why(tmp_path):
    r = runner.invoke(app, ["bench", "memory", "--estimate", "--compile", "--presets", "tiny",
                            "--channels", "16", "--tp", "2", "--img", "16x32",
                            "--out", str(tmp_path / "b.zarr")])
    assert r.exit_code == 1 and "--compile with --estimate" in one_error_line(r.output)
