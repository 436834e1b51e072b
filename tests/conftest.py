from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from dchag_cli.app import app
from pipelines.data.channels import resolve_channels
from pipelines.sample.era5 import generate_era5

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ERA5 = REPO / "sample_data" / "era5"
SMALL_CHANNELS = "z_500,t_850,u_850,t2m,u10"


@pytest.fixture(scope="session")
def era5_dir(tmp_path_factory) -> Path:
    """Four days of 12-hourly synthetic ERA5 on a 5° grid in CDS layouts (new + old)."""
    out = tmp_path_factory.mktemp("era5")
    generate_era5(out, resolve_channels(None, SMALL_CHANNELS), "2018-01-01", days=4,
                  step_hours=12, resolution=5.0, seed=1, split_days=2)
    return out


def write_netcdf(path: Path, variables: dict[str, tuple[tuple[str, ...], np.ndarray]],
                 coords: dict[str, np.ndarray], fmt: str = "NETCDF4") -> Path:
    """A hand-made netCDF file, for inputs the generator would never produce."""
    ds = xr.Dataset({k: (dims, v) for k, (dims, v) in variables.items()},
                    coords={k: (k, v) if np.ndim(v) else v for k, v in coords.items()})
    for name in ("lat", "latitude"):
        if name in ds.coords:
            ds[name].attrs["units"] = "degrees_north"
    for name in ("lon", "longitude"):
        if name in ds.coords:
            ds[name].attrs["units"] = "degrees_east"
    ds.to_netcdf(path, format=fmt)
    return path


def era5_like(path: Path, lat: np.ndarray, lon: np.ndarray, times: np.ndarray,
              fields: dict[str, np.ndarray]) -> Path:
    """Single-level file in the new CDS naming with the given (time, lat, lon) fields."""
    return write_netcdf(path, {k: (("valid_time", "latitude", "longitude"), v)
                               for k, v in fields.items()},
                        {"valid_time": times, "latitude": lat, "longitude": lon})


@pytest.fixture(autouse=True)
def _in_a_folder_of_its_own(tmp_path_factory, monkeypatch):
    """Every test runs in an empty folder of its own: what a command reads or writes by
    default (runs/forecast, era5.zarr, quickstart/) is never the checkout's — where the
    README's commands may have left those very outputs."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def sample_era5_zarr(tmp_path_factory) -> Path:
    """The shipped ERA5 sample (8 days, 6-hourly, 14 channels) prepared as era5.zarr."""
    out = tmp_path_factory.mktemp("era5z") / "era5.zarr"
    r = CliRunner().invoke(app, ["prep", "era5", str(REPO / "sample_data" / "era5"),
                            "--preset", "sample-14", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def sample_appl_zarr(tmp_path_factory) -> Path:
    """The shipped hyperspectral sample (4 plants, 500 bands) at 16×16 pixels."""
    out = tmp_path_factory.mktemp("applz") / "appl.zarr"
    manifest = REPO / "sample_data" / "appl" / "manifest.csv"
    r = CliRunner().invoke(app, ["prep", "appl", str(manifest),
                            "--size", "16", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def mae_run(tmp_path_factory, sample_appl_zarr):
    """A small MAE run on the sample cubes, shared by tests that only read it."""
    run = tmp_path_factory.mktemp("mae") / "run"
    r = CliRunner().invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--steps", "6", "--workers", "0", "--batch-size", "2",
                            "--ckpt-every", "6", "--val-every", "6"])
    assert r.exit_code == 0, r.output
    return run


def pytest_configure(config: pytest.Config) -> None:
    """With several test workers (`-n auto`), each computes on its share of the cores:
    torch's default of one thread per core in every worker oversubscribes the machine, and
    idle OpenMP threads spin. Subprocesses and training ranks inherit the share
    (OMP_NUM_THREADS, which a rank honours like a batch system's)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


SLOW_SECONDS = 15  # a `slow` test's weight when its marker names none


def _weight(item: pytest.Item) -> float:
    slow = item.get_closest_marker("slow")
    return 0.0 if slow is None else float(slow.kwargs.get("seconds", SLOW_SECONDS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The multi-second tests first, longest first (a stable sort: the rest keep their
    order). With several workers taking one test at a time (`-n auto --maxschedchunk 1`),
    that is longest-processing-time-first scheduling: no long test starts last and runs
    alone while the other workers wait."""
    items.sort(key=lambda item: -_weight(item))
