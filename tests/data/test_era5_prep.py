"""`prep era5` writes a complete, reproducible, atomically written artifact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.data.era5_stats import day_of_year_index, hour_of_day
from pipelines.errors import DchagError
from tests.conftest import SMALL_CHANNELS, era5_like

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "era5"

LAT, LON = np.linspace(90, -90, 37), np.arange(72) * 5.0
TIMES = np.datetime64("2018-01-01T00", "ns") + np.arange(4) * np.timedelta64(6, "h")


def _prep(sources, out: Path, **kw) -> xr.Dataset:
    prep_era5(Era5PrepConfig(sources=list(sources), out=out, channels=kw.pop("channels",
                                                                             SMALL_CHANNELS), **kw))
    return xr.open_zarr(out)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def test_store_has_data_coords_stats_climatology_and_provenance(era5_dir: Path, tmp_path: Path):
    ds = _prep([era5_dir], tmp_path / "era5.zarr", train_years=(2018, 2018), clim_window=1)
    assert ds["data"].dims == ("time", "channel", "lat", "lon")
    assert ds["data"].shape == (8, 5, 32, 64) and ds["data"].dtype == np.float32
    assert ds["data"].encoding["chunks"] == (1, 5, 32, 64)
    assert list(ds.channel.values) == SMALL_CHANNELS.split(",")
    assert ds.lat.values[0] == -87.1875 and ds.lon.values[-1] == 354.375
    assert str(ds.time.values[0])[:19] == "2018-01-01T00:00:00"
    data = ds["data"].values.astype(np.float64)
    np.testing.assert_allclose(ds["mean"].values, data.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(ds["std"].values, data.std(axis=(0, 2, 3)), rtol=1e-4)
    doy, hour = day_of_year_index(ds.time.values), hour_of_day(ds.time.values)
    assert ds["climatology"].dims == ("dayofyear", "hour", "channel", "lat", "lon")
    assert list(ds.hour.values) == [0, 6, 12, 18]
    for h, pos in ((0, 0), (12, 2)):
        np.testing.assert_allclose(ds["climatology"].values[0, pos],
                                   data[(doy == 0) & (hour == h)].mean(axis=0), rtol=1e-5)
    assert np.isnan(ds["climatology"].values[0, 1]).all()  # no 06 UTC data
    assert np.isnan(ds["climatology"].values[200]).all()
    per_step = ds["stats_sum"].values / ds["stats_count"].values
    np.testing.assert_allclose(per_step, data.mean(axis=(2, 3)), rtol=1e-6)
    z500 = ds["data"].sel(channel="z_500").values
    assert 4.5e4 < z500.mean() < 6e4
    prov = ds.attrs["provenance"]
    assert prov["stage"] == "prep era5" and prov["config"]["train_years"] == [2018, 2018]
    assert len(prov["inputs"]) == 4 and prov["dchag_version"]
    assert ds.attrs["regrid"]["method"] == "bilinear"
    # CF: units per channel as a coordinate, long names, standard names on the axes
    assert ds["data"].coords["channel_units"].values.tolist()[:2] == ["m**2 s**-2", "K"]
    assert ds["data"].attrs["units_by_channel"]["z_500"] == "m**2 s**-2"
    assert ds["data"].attrs["long_name"] and ds["climatology"].attrs["long_name"]
    assert ds.lat.attrs["standard_name"] == "latitude"
    assert ds["data"].sel(channel="t_850").channel_units.item() == "K"


def test_append_gives_the_same_store_as_one_run(era5_dir: Path, tmp_path: Path):
    first, second = sorted(era5_dir.glob("*2018-01-01.nc")), sorted(era5_dir.glob("*01-03.nc"))
    whole = _prep([era5_dir], tmp_path / "whole.zarr")
    _prep(first, tmp_path / "parts.zarr")
    prep_era5(Era5PrepConfig(sources=second, out=tmp_path / "parts.zarr",
                             channels=SMALL_CHANNELS, append=True))
    parts = xr.open_zarr(tmp_path / "parts.zarr")
    np.testing.assert_array_equal(parts["data"].values, whole["data"].values)
    np.testing.assert_array_equal(parts.time.values, whole.time.values)
    np.testing.assert_allclose(parts["mean"].values, whole["mean"].values, rtol=1e-12)
    np.testing.assert_allclose(parts["climatology"].values, whole["climatology"].values,
                               rtol=1e-6)
    assert len(parts.attrs["history"]) == 1


def test_append_refuses_overlapping_times_and_other_channels(era5_dir: Path, tmp_path: Path):
    out = tmp_path / "era5.zarr"
    _prep([era5_dir], out)
    before = xr.open_zarr(out)["data"].shape
    with pytest.raises(DchagError, match="overlap"):
        prep_era5(Era5PrepConfig(sources=[era5_dir], out=out, channels=SMALL_CHANNELS,
                                 append=True))
    with pytest.raises(DchagError, match="channels differ"):
        prep_era5(Era5PrepConfig(sources=[era5_dir], out=out, channels="z_500", append=True))
    assert xr.open_zarr(out)["data"].shape == before


def test_missing_variable_and_missing_level_name_the_fix(era5_dir: Path, tmp_path: Path):
    with pytest.raises(DchagError, match="no input file has variable 'q'"):
        _prep([era5_dir], tmp_path / "a.zarr", channels="q_500")
    with pytest.raises(DchagError, match="no 300 hPa level"):
        _prep([era5_dir], tmp_path / "b.zarr", channels="z_300")
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()
    assert _leftovers(tmp_path) == []


def test_nan_fields_are_refused_or_kept_and_counted(tmp_path: Path):
    field = np.full((4, 37, 72), 280.0, np.float32)  # K: inside t2m's physical range
    field[2, 5, 7] = np.nan
    src = era5_like(tmp_path / "nan.nc", LAT, LON, TIMES, {"t2m": field})
    with pytest.raises(DchagError, match=r"nan\.nc: t2m at 2018-01-01T12:00:00 has 1 NaN"):
        _prep([src], tmp_path / "refused.zarr", channels="t2m")
    assert not (tmp_path / "refused.zarr").exists() and _leftovers(tmp_path) == []
    summary = prep_era5(Era5PrepConfig(sources=[src], out=tmp_path / "kept.zarr",
                                       channels="t2m", allow_nan=True))
    assert summary.nan_values == {"t2m": 1}
    kept = xr.open_zarr(tmp_path / "kept.zarr")["data"].values
    assert np.isnan(kept[2]).any() and not np.isnan(kept[[0, 1, 3]]).any()


def test_duplicate_times_across_files_are_refused(tmp_path: Path):
    a = era5_like(tmp_path / "a.nc", LAT, LON, TIMES, {"t2m": np.ones((4, 37, 72))})
    b = era5_like(tmp_path / "b.nc", LAT, LON, TIMES[2:], {"t2m": np.ones((2, 37, 72))})
    with pytest.raises(DchagError, match="appears twice"):
        _prep([a, b], tmp_path / "dup.zarr", channels="t2m")


def test_channels_covering_different_times_are_refused(tmp_path: Path):
    a = era5_like(tmp_path / "a.nc", LAT, LON, TIMES, {"t2m": np.ones((4, 37, 72))})
    b = era5_like(tmp_path / "b.nc", LAT, LON, TIMES[:3], {"u10": np.ones((3, 37, 72))})
    with pytest.raises(DchagError, match="cover different times"):
        _prep([a, b], tmp_path / "x.zarr", channels="t2m,u10")


def test_curvilinear_grid_is_refused(tmp_path: Path):
    ds = xr.Dataset({"t2m": (("valid_time", "y", "x"), np.ones((4, 3, 4)))},
                    coords={"valid_time": TIMES,
                            "latitude": (("y", "x"), np.ones((3, 4))),
                            "longitude": (("y", "x"), np.ones((3, 4)))})
    ds.to_netcdf(tmp_path / "curvi.nc")
    with pytest.raises(DchagError, match=r"curvi\.nc: latitude/longitude are not 1-D"):
        _prep([tmp_path / "curvi.nc"], tmp_path / "x.zarr", channels="t2m")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder_is_refused_before_work(era5_dir: Path, tmp_path: Path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(DchagError, match="not writable"):
        _prep([era5_dir], ro / "era5.zarr")


def test_missing_output_folder_and_existing_store_are_refused(era5_dir: Path, tmp_path: Path):
    with pytest.raises(DchagError, match="output folder does not exist"):
        _prep([era5_dir], tmp_path / "nowhere" / "era5.zarr")
    out = tmp_path / "era5.zarr"
    _prep([era5_dir], out)
    with pytest.raises(DchagError, match=r"already exists.*--overwrite"):
        _prep([era5_dir], out)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(DchagError, match="not something dchag wrote"):
        _prep([era5_dir], mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_failed_rewrite_keeps_the_previous_store(era5_dir: Path, tmp_path: Path):
    out = tmp_path / "era5.zarr"
    good = _prep([era5_dir], out)["data"].values
    with pytest.raises(DchagError):
        _prep([era5_dir], out, channels="q_500", overwrite=True)
    np.testing.assert_array_equal(xr.open_zarr(out)["data"].values, good)
    assert _leftovers(tmp_path) == []
    shutil.rmtree(out)


def test_conservative_and_dateline_inputs(tmp_path: Path):
    lon180 = np.arange(-180, 180, 5.0)
    la, lo = np.meshgrid(LAT, lon180, indexing="ij")
    field = np.broadcast_to(np.cos(np.deg2rad(la)) + 0 * lo, (4, 37, 72)).astype(np.float32)
    src = era5_like(tmp_path / "dateline.nc", LAT, lon180, TIMES, {"t2m": field})
    # a shape, not a temperature: exact to 1e-6 only near 1
    ds = _prep([src], tmp_path / "c.zarr", channels="t2m", method="conservative",
               allow_out_of_range=True)
    out = ds["data"].values[0, 0]
    assert np.ptp(out, axis=1).max() < 1e-6  # zonally uniform stays uniform
    assert ds.attrs["regrid"]["method"] == "conservative"


def test_prep_does_not_import_libraries_it_does_not_use(tmp_path):
    """pydata-sparse (and numba with it) would be imported by xarray's array checks: a
    fixed start-up cost per process. It stays importable afterwards (xESMF needs it)."""
    pytest.importorskip("sparse")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipelines.data.era5_prep import Era5PrepConfig, prep_era5\n"
        f"prep_era5(Era5PrepConfig(sources=[Path({str(SAMPLE)!r})], out=Path("
        f"{str(tmp_path / 'e.zarr')!r}), preset='sample-14'))\n"
        "print('during', 'sparse' in sys.modules, 'numba' in sys.modules)\n"
        "import sparse\n"
        "print('after', sparse.__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "during False False" in done.stdout
    assert "after sparse" in done.stdout
