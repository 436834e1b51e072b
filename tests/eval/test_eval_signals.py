"""A stop signal while an evaluation writes its outputs: one line, exit 128 + signal, and
nothing half-written left (the store being written was staged beside its target)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.runner import app, runner


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory, sample_era5_zarr):
    run = tmp_path_factory.mktemp("fc") / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--lead", "6h", "--steps", "2", "--workers", "0",
                            "--batch-size", "2"])
    assert r.exit_code == 0, r.output
    return run


@pytest.mark.slow(seconds=15)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1])
def test_a_stop_signal_while_evaluation_writes_is_one_line(tmp_path, forecast_run,
                                                           sample_era5_zarr, sig):
    out = tmp_path / "ev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dchag_cli", "eval", "forecast", "--run", str(forecast_run),
         "--data", str(sample_era5_zarr), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "DCHAG_FAULT": "store:before-swap=stall"})
    try:
        deadline = time.monotonic() + 120
        while not list(out.parent.glob("ev.partial-*/*.partial-*")):  # writing a store now
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        os.killpg(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [ln for ln in (stdout + stderr).splitlines() if ln.startswith("interrupted")]
    assert proc.returncode == 128 + sig and "Traceback" not in stdout + stderr, stderr
    assert len(lines) == 1 and f"(signal {int(sig)})" in lines[0]
    assert not list(out.parent.glob("ev*partial*")) and not out.exists()
