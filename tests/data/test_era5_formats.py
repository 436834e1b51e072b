"""A CDS GRIB file, a WeatherBench 2 zarr and our netCDF path give the same era5.zarr for
the same fields; ensemble members, ECMWF short names and a time span are honoured."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.errors import DchagError
from tests.data.era5_formats import SAMPLE, sample_dataset, write_grib, write_wb2_zarr


def _prep(sources, out, **kw) -> zarr.Group:
    prep_era5(Era5PrepConfig(sources=list(sources), out=out, **{"preset": "sample-14", **kw}))
    return zarr.open_group(str(out), mode="r")


@pytest.fixture(scope="module")
def from_netcdf(tmp_path_factory) -> zarr.Group:
    return _prep([SAMPLE], tmp_path_factory.mktemp("nc") / "era5.zarr")


def _same_store(a: zarr.Group, b: zarr.Group) -> None:
    assert list(a["channel"][:]) == list(b["channel"][:])
    np.testing.assert_array_equal(a["time"][:], b["time"][:])
    _close(b["data"][:], a["data"][:])
    assert (np.abs(b["mean"][:] - a["mean"][:]) / a["std"][:]).max() < 1e-5
    np.testing.assert_allclose(b["std"][:], a["std"][:], rtol=1e-5)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float32 rounding (decoded float32 vs int16 unpacked after the regrid),
    relative to each channel's magnitude (winds cross zero)."""
    scale = np.abs(want).max(axis=(0, 2, 3), keepdims=True)
    assert got.shape == want.shape
    assert (np.abs(got - want) / scale).max() < 1e-6


def test_grib_gives_the_same_store_as_netcdf(tmp_path, from_netcdf):
    grib = write_grib(tmp_path / "grib")
    _same_store(from_netcdf, _prep([tmp_path / "grib"], tmp_path / "g.zarr"))
    assert sorted(p.name for p in (tmp_path / "grib").iterdir()) == sorted(p.name for p in grib)


def test_a_weatherbench2_zarr_gives_the_same_store_as_netcdf(tmp_path, from_netcdf):
    wb2 = write_wb2_zarr(tmp_path / "wb2.zarr")  # long names, (…, longitude, latitude)
    _same_store(from_netcdf, _prep([wb2], tmp_path / "w.zarr"))


def test_a_period_reads_only_that_span(tmp_path, from_netcdf):
    wb2 = write_wb2_zarr(tmp_path / "wb2.zarr")
    part = _prep([wb2], tmp_path / "p.zarr", period="2018-01-03:2018-01-04")
    assert from_netcdf["time"].attrs["units"].startswith("hours")
    times = from_netcdf["time"][:]
    hours = times - times[0]  # the sample starts 2018-01-01T00
    keep = (hours >= 48) & (hours < 96)
    assert part["time"].shape == (8,)
    _close(part["data"][:], from_netcdf["data"][:][keep])
    with pytest.raises(DchagError, match="no time of z_500 falls in --period"):
        _prep([wb2], tmp_path / "q.zarr", period="2019")


def test_ensemble_members_need_choosing_and_each_is_one_store(tmp_path, from_netcdf):
    write_grib(tmp_path / "ens", members=3)
    with pytest.raises(DchagError, match=r"3 ensemble members \(0–2\).*--member N"):
        _prep([tmp_path / "ens"], tmp_path / "e.zarr")
    assert not (tmp_path / "e.zarr").exists()
    two = _prep([tmp_path / "ens"], tmp_path / "e2.zarr", member=2)
    # member k is the sample plus k/1000; weights sum to one, so the regrid keeps it
    _close(two["data"][:], from_netcdf["data"][:] + 2 / 1000)
    with pytest.raises(DchagError, match="has no ensemble member 7"):
        _prep([tmp_path / "ens"], tmp_path / "e7.zarr", member=7)


def test_ecmwf_short_names_are_read_as_era5_variables(tmp_path, from_netcdf):
    src = tmp_path / "ecmwf"
    src.mkdir()
    shutil.copy(SAMPLE / "era5_pressure_levels_2018-01-01.nc", src)
    single = xr.open_dataset(SAMPLE / "era5_single_levels_2018-01-01.nc")
    single.rename({"t2m": "2t", "u10": "10u", "v10": "10v"}).to_netcdf(src / "sl.nc")
    _same_store(from_netcdf, _prep([src], tmp_path / "a.zarr"))
    chans = "z_500,2t,10u"
    got = _prep([src], tmp_path / "b.zarr", preset=None, channels=chans)
    assert list(got["channel"][:]) == ["z_500", "t2m", "u10"]


def test_grib_without_cfgrib_says_how_to_get_it(tmp_path, monkeypatch):
    import importlib.util

    write_grib(tmp_path / "g")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cfgrib" else real(name, *a))
    with pytest.raises(DchagError, match=r"dchag\[grib\]"):
        _prep([tmp_path / "g"], tmp_path / "x.zarr", workers=1)


def test_a_damaged_grib_message_refuses_the_file_by_name(tmp_path, capfd):
    """cfgrib would skip the message (printing a traceback) and open the rest."""
    files = write_grib(tmp_path / "g")
    target = sorted(files)[0]
    raw = bytearray(target.read_bytes())
    second = raw.find(b"GRIB", 10)  # the start of the second message
    raw[second + 8:second + 40] = b"\xff" * 32
    target.write_bytes(bytes(raw))
    with pytest.raises(DchagError, match=r"damaged GRIB: 1 message\(s\) could not be read"
                       ) as err:
        _prep([tmp_path / "g"], tmp_path / "x.zarr", workers=1)
    assert target.name in str(err.value) and not (tmp_path / "x.zarr").exists()
    assert "Traceback" not in "".join(capfd.readouterr())


def test_the_sample_dataset_is_the_shipped_sample():
    ds = sample_dataset()
    assert {"z", "t2m"} <= set(ds.data_vars) and ds.sizes["time"] == 32
