"""Constant fields (land-sea mask, orography, latitude) as channels broadcast over time:
from ERA5's invariant netCDF or a WeatherBench 2 zarr, or computed from the grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.errors import DchagError
from pipelines.run.config import TrainConfig
from pipelines.train.data import describe_artifact
from tests.data.era5_formats import (
    SAMPLE,
    write_invariant_netcdf,
    write_wb2_with_constants,
)
from tests.runner import app, runner

CHANNELS = "t2m,z_500,lsm,orography,lat"


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
    invariant = write_invariant_netcdf(tmp_path / "era5_invariant.nc")
    out = tmp_path / "era5.zarr"
    result = runner.invoke(app, ["prep", "era5", str(SAMPLE), "--channels", CHANNELS,
                                 "--constants", str(invariant), "--out", str(out)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["channels", str(out)])
    assert "constant fields (inputs, not forecast targets): lsm, orography, lat" in \
        " ".join(listed.output.split())
    assert zarr.open_group(str(out), mode="r").attrs["provenance"]["config"]["constants"] == \
        [str(invariant)]


def test_a_forecaster_with_constant_inputs_rolls_out(with_constants, tmp_path):
    """Constant fields are inputs the model never predicts; rolling out keeps them."""
    path, run = with_constants.store.root, tmp_path / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(path), "--out", str(run),
                            "--out-channels", "all", "--lead", "6h", "--steps", "4",
                            "--batch-size", "4", "--workers", "0", "--log-every", "2"])
    assert r.exit_code == 0, r.output
    info = json.loads((run / "model.json").read_text())
    assert info["out_channels"] == ["t2m", "z_500"]
    assert info["channel_names"] == CHANNELS.split(",")
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data", str(path),
                            "--lead", "6h,1d", "--rollout", "--period", "2018-01"])
    assert r.exit_code == 0, r.output
    assert "rolled out in 4 steps of 6h" in r.output
    scores = xr.open_zarr(run / "eval" / "scores.zarr")
    assert list(scores.channel.values) == ["t2m", "z_500"]
    assert np.isfinite(scores.rmse.sel(forecaster="model").values).all()
