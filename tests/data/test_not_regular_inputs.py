"""Inputs that are not regular files or folders — a named pipe above all, whose first read
blocks until someone writes — are refused unopened, in one line, by every prep."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _prep(*args: str) -> subprocess.CompletedProcess:
    # a subprocess with a deadline: a hang fails the test instead of stalling the suite
    return subprocess.run([sys.executable, "-m", "dchag_cli", "prep", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["era5", "appl"])
def test_a_named_pipe_is_refused_without_being_opened(tmp_path, kind):
    fifo = tmp_path / ("input.nc" if kind == "era5" else "cube.hdr")
    os.mkfifo(fifo)
    r = _prep(kind, str(fifo), "--out", str(tmp_path / f"{kind}.zarr"))
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and "named pipe" in lines[-1], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / f"{kind}.zarr").exists()


def test_a_manifest_row_that_is_a_named_pipe_is_refused(tmp_path):
    fifo = tmp_path / "cube.hdr"
    os.mkfifo(fifo)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,plant_id\n{fifo},plant1\n")
    r = _prep("appl", str(manifest), "--out", str(tmp_path / "appl.zarr"))
    assert r.returncode == 1 and "named pipe" in r.stderr, r.stderr
