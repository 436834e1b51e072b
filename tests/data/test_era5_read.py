"""Both CDS layouts, packed values, expver mixes and ZIP deliveries read the same."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipelines.data.channels import parse_channel
from pipelines.data.era5_read import expand_sources, open_era5
from pipelines.errors import DchagError
from pipelines.sample.era5 import write_cds_netcdf
from tests.conftest import era5_like

TIMES = np.datetime64("2018-01-01T00", "ns") + np.arange(3) * np.timedelta64(6, "h")


def test_new_and_old_cds_layouts_decode_to_the_same_values(tmp_path: Path):
    chans = [parse_channel("z_500"), parse_channel("t_850")]
    new = open_era5(write_cds_netcdf(tmp_path / "new.nc", chans, TIMES, 10.0, "new", seed=3))
    old = open_era5(write_cds_netcdf(tmp_path / "old.nc", chans, TIMES, 10.0, "old", seed=3))
    assert xr.open_dataset(tmp_path / "new.nc")["z"].dtype == np.float32
    assert new.read("z", np.arange(3), [0]).dtype == np.float32
    raw_old = xr.open_dataset(tmp_path / "old.nc", mask_and_scale=False)
    assert raw_old["z"].dtype == np.int16 and "scale_factor" in raw_old["z"].attrs
    np.testing.assert_array_equal(new.times, old.times)
    for var, level in (("z", 500), ("t", 850)):
        a = new.read(var, np.arange(3), [new.level_index(level)])
        b = old.read(var, np.arange(3), [old.level_index(level)])
        scale = float(raw_old[var].attrs["scale_factor"])
        # old: int16 packing error ≤ scale/2; new: stored to 2 decimals (least_significant_digit)
        np.testing.assert_allclose(a, b, atol=scale * 0.51 + 0.01)


def test_expver_dimension_merges_era5_and_era5t(tmp_path: Path):
    lat, lon = np.linspace(90, -90, 5), np.arange(0, 360, 90.0)
    first = np.full((3, 5, 4), np.nan)
    first[:2] = 1.0
    second = np.full((3, 5, 4), np.nan)
    second[2] = 2.0
    ds = xr.Dataset({"t2m": (("time", "expver", "latitude", "longitude"),
                             np.stack([first, second], axis=1))},
                    coords={"time": TIMES, "expver": [1, 5], "latitude": lat, "longitude": lon})
    ds.to_netcdf(tmp_path / "mixed.nc")
    f = open_era5(tmp_path / "mixed.nc")
    np.testing.assert_array_equal(f.read("t2m", np.arange(3), None)[:, 0, 0], [1.0, 1.0, 2.0])


def test_zip_delivery_and_folders_expand_to_their_netcdf_members(tmp_path: Path):
    lat, lon = np.linspace(90, -90, 5), np.arange(0, 360, 90.0)
    a = era5_like(tmp_path / "instant.nc", lat, lon, TIMES, {"t2m": np.ones((3, 5, 4))})
    b = era5_like(tmp_path / "accum.nc", lat, lon, TIMES, {"tp": np.ones((3, 5, 4))})
    with zipfile.ZipFile(tmp_path / "delivery.zip", "w") as zf:
        zf.write(a, "data_stream-oper_stepType-instant.nc")
        zf.write(b, "data_stream-oper_stepType-accum.nc")
    with expand_sources([tmp_path / "delivery.zip"]) as paths:
        assert sorted(open_era5(p).variables.popitem()[0] for p in paths) == ["t2m", "tp"]
    with expand_sources([tmp_path]) as paths:
        assert len(paths) == 2


def test_long_weatherbench_names_are_understood(tmp_path: Path):
    lat, lon = np.linspace(90, -90, 5), np.arange(0, 360, 90.0)
    f = open_era5(era5_like(tmp_path / "wb.nc", lat, lon, TIMES,
                            {"2m_temperature": np.ones((3, 5, 4))}))
    assert f.variables == {"t2m": "2m_temperature"}


def test_not_a_netcdf_file_is_named(tmp_path: Path):
    bad = tmp_path / "download.nc"
    bad.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(DchagError, match=r"download\.nc: not a readable netCDF file"):
        open_era5(bad)


def test_file_without_era5_variables_is_refused(tmp_path: Path):
    lat, lon = np.linspace(90, -90, 5), np.arange(0, 360, 90.0)
    path = era5_like(tmp_path / "other.nc", lat, lon, TIMES, {"sst_anomaly": np.ones((3, 5, 4))})
    with pytest.raises(DchagError, match="no ERA5 variable"):
        open_era5(path)
