"""Writes are transactions: a crash, a full disk or a second writer never damages a store.

Faults are injected into real `dchag` processes through `DCHAG_FAULT` (kill -9 at a named
point, a full disk at a named point, or a stall while the locks are held), and once
through a real tiny filesystem where the platform lets a test mount one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipelines.fsops import clone_tree

ARRAYS = ("data", "time", "mean", "std", "stats_sum", "stats_sumsq", "stats_count",
          "climatology", "clim_sum", "clim_count")
SMALL = "z_500,t_850,u_850,t2m,u10"


def dchag(*args: str, fault: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("DCHAG_FAULT", None)
    if fault:
        env["DCHAG_FAULT"] = fault
    kw.setdefault("timeout", 300)
    return subprocess.run([sys.executable, "-m", "dchag_cli", *args], env=env,
                          capture_output=True, text=True, **kw)


def _arrays(store: Path) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(store), mode="r")
    return {name: g[name][:] for name in ARRAYS}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if ".partial-" in p.name or ".old-" in p.name or p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def halves(era5_dir: Path, tmp_path_factory) -> tuple[list[Path], list[Path], Path]:
    """The 4-day sample split in two deliveries, and the store of one clean append."""
    first = sorted(era5_dir.glob("*2018-01-01.nc"))
    second = sorted(era5_dir.glob("*2018-01-03.nc"))
    ref = tmp_path_factory.mktemp("ref") / "era5.zarr"
    r = dchag("prep", "era5", *map(str, first), "--channels", SMALL, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    r = dchag("prep", "era5", *map(str, second), "--channels", SMALL, "--out", str(ref),
              "--append")
    assert r.returncode == 0, r.stderr
    return first, second, ref


def _fresh(first: list[Path], out: Path) -> dict[str, np.ndarray]:
    r = dchag("prep", "era5", *map(str, first), "--channels", SMALL, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return _arrays(out)


def test_zarr_replaces_a_chunk_by_rename_so_hard_linked_clones_are_safe(tmp_path):
    g = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=2)
    g.create_array("x", shape=(4,), chunks=(2,), dtype="f8", fill_value=None)[:] = 1.0
    clone_tree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    assert os.stat(tmp_path / "a.zarr" / "x" / "0").st_nlink == 2
    zarr.open_group(str(tmp_path / "b.zarr"), mode="r+")["x"][:] = 2.0
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "a.zarr"))["x"][:], 1.0)


@pytest.mark.parametrize("point", ["prep:block-written", "append:before-swap"])
@pytest.mark.slow
def test_kill_9_during_append_leaves_the_store_and_a_retry_equals_one_append(
        tmp_path, halves, point):
    first, second, ref = halves
    out = tmp_path / "era5.zarr"
    before = _fresh(first, out)
    r = dchag("prep", "era5", *map(str, second), "--channels", SMALL, "--out", str(out),
              "--append", fault=point)
    assert r.returncode == -9
    _same(_arrays(out), before)
    r = dchag("prep", "era5", *map(str, second), "--channels", SMALL, "--out", str(out),
              "--append")
    assert r.returncode == 0, r.stderr
    _same(_arrays(out), _arrays(ref))
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_parallel_decoding_gives_the_same_store_and_dies_with_the_prep(tmp_path, halves):
    """--workers 2 writes the very arrays one process writes; `kill -9` of the prep ends
    its decoding processes too (else they would hold its pipes: `run` would hang)."""
    first, second, ref = halves
    one = tmp_path / "one.zarr"
    two = tmp_path / "two.zarr"
    for out, workers in ((one, "1"), (two, "2")):
        r = dchag("prep", "era5", *map(str, first + second), "--channels", SMALL,
                  "--out", str(out), "--workers", workers)
        assert r.returncode == 0, r.stderr
    assert "2 decoding processes" in r.stdout
    _same(_arrays(one), _arrays(two))
    _same(_arrays(two), _arrays(ref))
    r = dchag("prep", "era5", *map(str, first + second), "--channels", SMALL, "--out",
              str(tmp_path / "killed.zarr"), "--workers", "2", fault="prep:block-written",
              timeout=60)
    assert r.returncode == -9
    assert not (tmp_path / "killed.zarr").exists()


def test_full_disk_during_append_is_one_line_and_changes_nothing(tmp_path, halves):
    first, second, _ = halves
    out = tmp_path / "era5.zarr"
    before = _fresh(first, out)
    r = dchag("prep", "era5", *map(str, second), "--channels", SMALL, "--out", str(out),
              "--append", fault="prep:block-written=enospc")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error:")
    assert "out of disk space" in r.stderr and "unchanged" in r.stderr
    assert "Traceback" not in r.stderr
    _same(_arrays(out), before)
    assert _leftovers(tmp_path) == []


def test_kill_9_while_writing_a_new_store_leaves_nothing_once_the_next_run_starts(
        tmp_path, halves):
    first, _, _ = halves
    out = tmp_path / "era5.zarr"
    r = dchag("prep", "era5", *map(str, first), "--channels", SMALL, "--out", str(out),
              fault="prep:block-written")
    assert r.returncode == -9 and not out.exists()
    assert any(".partial-" in n for n in _leftovers(tmp_path))
    _fresh(first, out)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_second_writer_is_refused_and_names_the_first(tmp_path, halves):
    first, second, _ = halves
    out = tmp_path / "era5.zarr"
    before = _fresh(first, out)
    env = {**os.environ, "DCHAG_FAULT": "prep:block-written=stall"}
    holder = subprocess.Popen([sys.executable, "-m", "dchag_cli", "prep", "era5",
                               *map(str, second), "--channels", SMALL, "--out", str(out),
                               "--append"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / ".era5.zarr.lock"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip()):
            assert holder.poll() is None and time.time() < deadline
            time.sleep(0.05)
        for args in (["--append"], ["--overwrite"]):
            r = dchag("prep", "era5", *map(str, second), "--channels", SMALL, "--out",
                      str(out), *args)
            assert r.returncode == 1
            assert f"another dchag process (PID {holder.pid})" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    _same(_arrays(out), before)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs, where the platform lets a test mount one (root on Linux)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_a_real_full_disk_is_one_line_and_leaves_nothing(tiny_disk, era5_dir):
    out = tiny_disk / "era5.zarr"  # the 80-channel climatology sums alone need more
    r = dchag("prep", "era5", str(era5_dir), "--channels", SMALL, "--out", str(out),
              "--clim-hour-step", "1")
    assert r.returncode == 1, r.stderr
    assert "out of disk space" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tiny_disk.iterdir()) == []
