"""`dchag recipe weatherbench`: the 5.625° protocol's commands, and a dry run that reads a
remote store's metadata only."""

from __future__ import annotations

import pytest

from tests.data.http_store import serve, write_climax_layout
from tests.runner import app, runner

pytest.importorskip("aiohttp")


def test_dry_run_prints_the_protocol_and_what_would_be_read(tmp_path):
    store = write_climax_layout(tmp_path / "bucket" / "wb2.zarr")
    work = tmp_path / "work"
    with serve(store.parent) as (base, faults):
        r = runner.invoke(app, ["recipe", "weatherbench", "--source", f"{base}/wb2.zarr",
                                "--work", str(work), "--gpus", "4", "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(ln.startswith(f"dchag prep era5 {base}/wb2.zarr --preset climax-48 --period "
                             "1979:2018 --train-years 1979:2015") for ln in lines)
    assert any("--train-period 1979:2015 --val-period 2016 --test-period 2017:2018" in ln
               and "--gpus 4" in ln for ln in lines)
    assert any(ln.startswith("dchag eval forecast") and "--lead 6h,1d,3d,5d,7d" in ln
               for ln in lines)
    # the store's 48 times, 48 channels; nothing but metadata and coordinates fetched
    assert "48 (2016-12-25T00:00 … 2017-01-05T18:00, every 6 h)" in r.output
    assert "(48)" in r.output
    assert faults.served_bytes < 40_000
    assert not work.exists()


def test_unknown_channel_set_is_refused(tmp_path):
    r = runner.invoke(app, ["recipe", "weatherbench", "--channels", "all", "--dry-run"])
    assert r.exit_code != 0 and "choose climax or paper" in r.output
