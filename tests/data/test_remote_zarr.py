"""`prep era5 URL`: a zarr store read over HTTP (a real server on 127.0.0.1) gives the
same era5.zarr as the same store read from its folder, fetches only the chunks a period
needs, survives transient faults and explains the ones that persist."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.data.remote import RemoteZarr, https_url, is_url
from pipelines.errors import DchagError
from tests.data.http_store import Faults, serve, store_bytes, write_three_months
from tests.runner import app, one_error_line, runner

pytest.importorskip("aiohttp")
CHANNELS = "t2m,z_500,z_850"


@pytest.fixture(scope="module")
def wb2(tmp_path_factory) -> Path:
    return write_three_months(tmp_path_factory.mktemp("bucket") / "wb2.zarr")


@pytest.fixture(scope="module")
def local_february(wb2, tmp_path_factory) -> zarr.Group:
    out = tmp_path_factory.mktemp("local") / "era5.zarr"
    prep_era5(Era5PrepConfig(sources=[wb2], out=out, channels=CHANNELS, period="2018-02"))
    return zarr.open_group(str(out), mode="r")


def _remote(url: str, out: Path, **kw):
    remote = RemoteZarr(url, timeout_s=kw.pop("timeout_s", 5.0), retries=kw.pop("retries", 3),
                        first_wait_s=kw.pop("first_wait_s", 0.5),
                        deadline_s=kw.pop("deadline_s", 600.0))
    return prep_era5(Era5PrepConfig(sources=[remote], out=out, channels=CHANNELS,
                                    period="2018-02", **kw))


def _identical(a: zarr.Group, b: zarr.Group) -> None:
    for name in ("data", "time", "mean", "std", "climatology", "channel"):
        np.testing.assert_array_equal(a[name][:], b[name][:], strict=True)


@pytest.mark.slow
def test_remote_read_is_bit_identical_and_fetches_only_the_period(wb2, local_february,
                                                                  tmp_path):
    with serve(wb2.parent) as (base, faults):
        summary = _remote(f"{base}/wb2.zarr", tmp_path / "r.zarr")
    got = zarr.open_group(str(tmp_path / "r.zarr"), mode="r")
    _identical(got, local_february)
    assert got["time"].shape[0] == 28 * 4
    # one month of three: February's chunks, the coordinates and the metadata
    assert summary.fetched_bytes == faults.served_bytes
    assert summary.fetched_bytes <= 0.4 * store_bytes(wb2)
    assert summary.selected_bytes == 28 * 4 * 3 * 32 * 64 * 4
    assert got.attrs["provenance"]["inputs"] == [{"url": f"{base}/wb2.zarr"}]


def test_transient_faults_are_retried_to_the_same_store(wb2, local_february, tmp_path):
    # a stall longer than the client's timeout; short waits between attempts, since
    # what is tested is that every fault is retried, not how long the waits are
    faults = Faults(errors_5xx=3, stalls=1, truncations=2, stall_s=2.0)
    with serve(wb2.parent, faults) as (base, f):
        _remote(f"{base}/wb2.zarr", tmp_path / "r.zarr", timeout_s=1.0, retries=4,
                first_wait_s=0.05)
    assert (f.errors_5xx, f.stalls, f.truncations) == (0, 0, 0)  # every fault was met
    _identical(zarr.open_group(str(tmp_path / "r.zarr"), mode="r"), local_february)


def test_a_fault_that_persists_is_one_line_and_leaves_nothing(wb2, tmp_path):
    with serve(wb2.parent, Faults(errors_5xx=100)) as (base, _), \
            pytest.raises(DchagError, match=r"kept failing \(HTTP 503\).*--retries"):
        _remote(f"{base}/wb2.zarr", tmp_path / "r.zarr", retries=1)
    assert not list(tmp_path.iterdir())  # no store, no temporary, no lock left


@pytest.mark.slow
def test_a_trickling_server_ends_within_the_deadlines(wb2, tmp_path):
    """A byte every 0.2 s never trips the 5 s read timeout; the per-request deadline (1 s)
    does, and all attempts together stop after 3 deadlines whatever --retries says."""
    import time

    start = time.monotonic()
    with serve(wb2.parent, Faults(trickles=10_000, trickle_s=0.2)) as (base, _), \
            pytest.raises(DchagError, match=r"did not complete within --deadline 1 s \(data "
                          r"arrives, too slowly; [\d,]+ bytes fetched so far\).*--deadline"):
        _remote(f"{base}/wb2.zarr", tmp_path / "r.zarr", retries=50, first_wait_s=0.05,
                deadline_s=1.0)
    assert time.monotonic() - start < 30  # 3 deadlines and backoff, not 51 attempts
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("status", "message"), [
    ({".zmetadata": 403, ".zgroup": 403}, r"access denied \(HTTP 403\).*GOOGLE_APPLICATION"),
    ({}, r"no zarr store there"),
])
def test_denied_or_missing_store_is_one_line(wb2, tmp_path, status, message):
    path = "/wb2.zarr" if status else "/nothing.zarr"
    with serve(wb2.parent, Faults(status=status)) as (base, _), \
            pytest.raises(DchagError, match=message):
        _remote(base + path, tmp_path / "r.zarr")
    assert not list(tmp_path.iterdir())


def test_unreachable_host_from_the_cli(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = runner.invoke(app, ["prep", "era5", f"http://127.0.0.1:{port}/wb2.zarr", "--out",
                     str(tmp_path / "r.zarr"), "--retries", "0", "--timeout", "2"])
    assert r.exit_code != 0
    assert f"http://127.0.0.1:{port}/wb2.zarr: host unreachable" in one_error_line(r.output)
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize(("key", "said"), [
    (None, "no such file"), ("garbage{", "not a JSON key file (JSONDecodeError)"),
    ("[1, 2]", "JSON without a credential `type`")])
def test_missing_or_garbage_credentials_are_one_line_before_any_request(
        tmp_path, monkeypatch, key, said):
    """Refused before a connection is opened (gcsfs would fall back to anonymous access
    with a traceback in the log)."""
    path = tmp_path / "key.json"
    if key is not None:
        path.write_text(key)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    r = runner.invoke(app, ["prep", "era5", "gs://a-private-bucket/era5.zarr", "--out",
                            str(tmp_path / "r.zarr"), "--retries", "0"])
    assert r.exit_code == 1
    assert one_error_line(r.output).startswith(
        f"error: GOOGLE_APPLICATION_CREDENTIALS={path}: {said}")
    assert "Traceback" not in r.output and not (tmp_path / "r.zarr").exists()


def test_the_cli_reports_bytes_fetched(wb2, tmp_path):
    with serve(wb2.parent) as (base, _):
        r = runner.invoke(app, ["prep", "era5", f"{base}/wb2.zarr", "--channels", CHANNELS,
                         "--period", "2018-02-01:2018-02-03", "--out", str(tmp_path / "e.zarr")])
    assert r.exit_code == 0, r.output
    assert "fetched" in r.output and "from remote stores" in r.output


def test_urls_are_told_from_paths_and_buckets_map_to_public_endpoints():
    assert is_url("gs://weatherbench2/x.zarr") and is_url("HTTPS://h/x") \
        and not is_url("data/gs.zarr")
    assert https_url("gs://weatherbench2/datasets/era5/x.zarr/") == \
        "https://storage.googleapis.com/weatherbench2/datasets/era5/x.zarr"
    assert https_url("s3://era5-pds/zarr") == "https://era5-pds.s3.amazonaws.com/zarr"


def test_dry_run_reads_only_metadata_and_coordinates(wb2, tmp_path):
    with serve(wb2.parent) as (base, faults):
        r = runner.invoke(app, ["prep", "era5", f"{base}/wb2.zarr", "--channels", CHANNELS,
                                "--period", "2018-02", "--dry-run", "--out",
                                str(tmp_path / "e.zarr")])
    assert r.exit_code == 0, r.output
    assert "112 (2018-02-01T00:00 … 2018-02-28T18:00, every 6 h)" in r.output
    # t2m and z (both levels in one chunk): 28 chunks of 4 time steps each
    assert "56 touched, 2.6 MiB uncompressed" in r.output
    assert faults.served_bytes < 20_000  # metadata and coordinates, no field
    assert not (tmp_path / "e.zarr").exists()
