"""Constant fields (land-sea mask, orography, latitude) as channels broadcast over time:
from ERA5's invariant netCDF or a WeatherBench 2 zarr, or computed from the grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.data.units import G0
from pipelines.errors import DchagError
from pipelines.train.config import TrainConfig
from pipelines.train.data import describe_artifact
from tests.data.era5_formats import SAMPLE, sample_dataset, write_wb2_zarr

CHANNELS = "t2m,z_500,lsm,orography,lat"


def _fields() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A land-sea mask and an orography (m) on the sample's 5° grid."""
    ds = sample_dataset()
    lat, lon = ds["latitude"].values, ds["longitude"].values
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    lsm = (np.sin(2 * lo) * np.cos(la) > 0.2).astype(np.float32)
    orography = (lsm * 2500 * np.cos(la) ** 2 + 40 * np.sin(3 * lo)).astype(np.float32)
    return lat, lon, lsm, orography


def write_invariant_netcdf(path):
    """ERA5's invariant file as the current CDS writes it: one `valid_time`, surface
    geopotential `z` in m² s⁻²."""
    lat, lon, lsm, orography = _fields()
    dims = ("valid_time", "latitude", "longitude")
    ds = xr.Dataset(
        {"lsm": (dims, lsm[None], {"units": "(0 - 1)"}),
         "z": (dims, (orography * G0)[None], {"units": "m**2 s**-2"})},
        coords={"valid_time": [np.datetime64("1979-01-01T00", "ns")], "latitude": lat,
                "longitude": lon})
    ds.to_netcdf(path)
    return path


def write_wb2_with_constants(path):
    """WeatherBench 2's layout: constants without a time dimension, long names."""
    write_wb2_zarr(path)
    lat, lon, lsm, orography = _fields()
    dims = ("longitude", "latitude")
    extra = xr.Dataset(
        {"land_sea_mask": (dims, lsm.T[:, ::-1]),
         "geopotential_at_surface": (dims, (orography * G0).T[:, ::-1],
                                     {"units": "m**2 s**-2"})},
        coords={"latitude": lat[::-1], "longitude": lon})
    extra.to_zarr(path, mode="a", zarr_format=2, consolidated=True)
    return path


def _prep(sources, out, **kw) -> zarr.Group:
    prep_era5(Era5PrepConfig(sources=list(sources), out=out, channels=CHANNELS, **kw))
    return zarr.open_group(str(out), mode="r")


@pytest.fixture(scope="module")
def with_constants(tmp_path_factory) -> zarr.Group:
    tmp = tmp_path_factory.mktemp("constants")
    invariant = write_invariant_netcdf(tmp / "era5_invariant.nc")
    return _prep([SAMPLE], tmp / "era5.zarr", constants=[invariant])


def test_constant_fields_are_broadcast_over_time(with_constants):
    g = with_constants
    names = list(g["channel"][:])
    assert names == CHANNELS.split(",")
    assert g.attrs["constant_channels"] == ["lsm", "orography", "lat"]
    data = g["data"][:]
    assert data.shape[0] == g["time"].shape[0] == 32  # the sample's times, not the file's 1
    for c in ("lsm", "orography", "lat"):
        k = names.index(c)
        assert np.array_equal(data[:, k], np.broadcast_to(data[:1, k], data[:, k].shape))
    lat = np.broadcast_to(g["lat"][:][:, None], data.shape[2:])
    np.testing.assert_array_equal(data[0, names.index("lat")], lat)
    lsm = data[0, names.index("lsm")]
    assert 0 <= lsm.min() < 0.5 < lsm.max() <= 1  # a mask regridded bilinearly
    orography = data[0, names.index("orography")]
    assert 1000 < orography.max() < 2600  # metres: surface geopotential divided by g
    assert list(g["channel_units"][:])[names.index("orography")] == "m"
    # time-varying channels keep varying
    assert data[:, names.index("t2m")].std(axis=0).max() > 0


def test_a_weatherbench2_zarr_gives_the_same_constants(tmp_path, with_constants):
    wb2 = write_wb2_with_constants(tmp_path / "wb2.zarr")
    g = _prep([wb2], tmp_path / "w.zarr")
    want, got = with_constants["data"][:], g["data"][:]
    scale = np.abs(want).max(axis=(0, 2, 3), keepdims=True)
    assert (np.abs(got - want) / scale).max() < 1e-5


def test_a_missing_constant_field_names_the_fix(tmp_path):
    with pytest.raises(DchagError, match=r"no input file has variable 'lsm'.*--constants"):
        _prep([SAMPLE], tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


def test_only_constant_fields_are_refused(tmp_path):
    invariant = write_invariant_netcdf(tmp_path / "inv.nc")
    with pytest.raises(DchagError, match="only constant fields"):
        prep_era5(Era5PrepConfig(sources=[invariant], out=tmp_path / "x.zarr",
                                 channels="lsm,lat"))


def test_constant_fields_are_inputs_never_forecast_targets(with_constants, tmp_path):
    path = with_constants.store.root
    def config(targets: list[str]) -> TrainConfig:
        return TrainConfig(task="forecast", data=str(path), out_channels=targets, leads=[6])

    art = describe_artifact(path, config(["all"]))
    targets = [art.channel_names[i] for i in art.out_index]
    assert targets == ["t2m", "z_500"]
    assert art.channel_names == CHANNELS.split(",")  # still model inputs
    with pytest.raises(DchagError, match="lsm is a constant field"):
        describe_artifact(path, config(["t2m", "lsm"]))


def test_the_command_line_takes_a_constants_file(tmp_path):
    from typer.testing import CliRunner

    from dchag_cli.app import app

    invariant = write_invariant_netcdf(tmp_path / "era5_invariant.nc")
    out = tmp_path / "era5.zarr"
    runner = CliRunner()
    result = runner.invoke(app, ["prep", "era5", str(SAMPLE), "--channels", CHANNELS,
                                 "--constants", str(invariant), "--out", str(out)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["channels", str(out)])
    assert "constant fields (inputs, not forecast targets): lsm, orography, lat" in \
        " ".join(listed.output.split())
    assert zarr.open_group(str(out), mode="r").attrs["provenance"]["config"]["constants"] == \
        [str(invariant)]
