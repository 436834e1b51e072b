"""Input that would silently poison an artifact is refused, converted exactly, or counted."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.errors import DchagError
from tests.conftest import era5_like, write_netcdf
from tests.runner import app, runner

LAT, LON = np.linspace(90, -90, 37), np.arange(72) * 5.0
TIMES = np.datetime64("2018-01-01T00", "ns") + np.arange(4) * np.timedelta64(6, "h")
SAMPLE_APPL = Path(__file__).resolve().parents[2] / "sample_data" / "appl"


def _field(value: float = 280.0) -> np.ndarray:
    la = np.deg2rad(LAT)[:, None]
    return np.broadcast_to(value + 10 * np.cos(la) + 0 * LON, (4, 37, 72)).astype(np.float32)


def _file(path: Path, var: str, data: np.ndarray, units: str | None, lat=LAT, lon=LON,
          times=TIMES) -> Path:
    era5_like(path, lat, lon, times, {var: data})
    ds = xr.open_dataset(path).load()
    ds.close()
    if units is not None:
        ds[var].attrs["units"] = units
    ds.to_netcdf(path)
    return path


def _prep(src, out: Path, channels: str, **kw) -> xr.Dataset:
    prep_era5(Era5PrepConfig(sources=[src], out=out, channels=channels, **kw))
    return xr.open_zarr(out)


def test_infinite_values_are_refused_or_counted_never_averaged(tmp_path):
    data = _field().copy()
    data[1, 5, 7] = np.inf
    src = _file(tmp_path / "inf.nc", "t2m", data, "K")
    with pytest.raises(DchagError, match=r"t2m at 2018-01-01T06:00:00 has 1 non-finite"):
        _prep(src, tmp_path / "a.zarr", "t2m")
    assert not (tmp_path / "a.zarr").exists()
    ds = _prep(src, tmp_path / "b.zarr", "t2m", allow_nan=True)
    assert np.isfinite(ds["mean"].values).all() and np.isfinite(ds["std"].values).all()
    assert int(ds["stats_count"].values[1, 0]) < 32 * 64


def test_values_outside_the_physical_range_are_refused_unless_allowed(tmp_path):
    data = _field().copy()
    data[2, 10, 20] = 3e38  # a fill value that leaked through: finite, and ruinous
    src = _file(tmp_path / "huge.nc", "t2m", data, "K")
    with pytest.raises(DchagError, match=r"t2m at 2018-01-01T12:00 has \d+ value\(s\) outside "
                       r"the physical range \[150, 350\]") as err:
        _prep(src, tmp_path / "a.zarr", "t2m")
    assert "--allow-out-of-range" in str(err.value) and "huge.nc" in str(err.value)
    assert not (tmp_path / "a.zarr").exists()
    ds = _prep(src, tmp_path / "b.zarr", "t2m", allow_out_of_range=True)
    assert float(ds["data"].max()) > 1e30  # kept, as asked


def test_one_value_just_outside_the_range_is_refused_before_the_regrid_blurs_it(tmp_path):
    """149 K at one grid point: the 5° → 5.625° regrid would average it with neighbours
    near 290 K into a plausible value, so the check reads the decoded inputs."""
    data = _field().copy()
    data[1, 10, 20] = 149.0
    src = _file(tmp_path / "cold.nc", "t2m", data, "K")
    with pytest.raises(DchagError, match=r"t2m at 2018-01-01T06:00 has 1 value\(s\) outside "
                       r"the physical range \[150, 350\] \(e\.g\. 149\)"):
        _prep(src, tmp_path / "a.zarr", "t2m")
    assert not (tmp_path / "a.zarr").exists()


@pytest.mark.parametrize(("var", "level", "value", "said"), [
    ("t", 850.0, 149.0, "t_850"), ("t", 850.0, 400.0, "t_850"),
    ("z", 500.0, 1.0e6, "z_500"), ("q", 500.0, 0.2, "q_500")])
def test_impossible_upper_air_values_are_refused_naming_channel_time_and_value(
        tmp_path, var, level, value, said):
    base = {"t": 250.0, "z": 5.5e4, "q": 0.002}[var]
    data = np.full((4, 1, 37, 72), base, np.float32)
    data[3, 0, 20, 30] = value
    src = tmp_path / "pl.nc"
    write_netcdf(src, {var: (("valid_time", "pressure_level", "latitude", "longitude"), data)},
                 {"valid_time": TIMES, "pressure_level": np.array([level]), "latitude": LAT,
                  "longitude": LON})
    with pytest.raises(DchagError, match=rf"{said} at 2018-01-01T18:00 has 1 value\(s\) "
                       r"outside the physical range") as err:
        _prep(src, tmp_path / "a.zarr", said)
    assert f"(e.g. {value:.4g})" in str(err.value) and "--allow-out-of-range" in str(err.value)
    assert not (tmp_path / "a.zarr").exists()


@pytest.mark.parametrize(("scale", "offset", "said"), [
    (0.0, 280.0, "scale_factor 0 and add_offset 280"),
    (0.01, float("nan"), "scale_factor 0.01 and add_offset nan"),
    (float("inf"), 0.0, "scale_factor inf"),
])
def test_packing_that_no_value_decodes_through_is_refused(tmp_path, scale, offset, said):
    """scale_factor 0 would make every value the offset: a constant field that passes
    every check; a NaN or inf one makes every value non-finite."""
    import netCDF4

    src = _file(tmp_path / "packed.nc", "t2m", _field(), "K")
    with netCDF4.Dataset(src, "r+") as d:
        d["t2m"].setncattr("scale_factor", np.float32(scale))
        d["t2m"].setncattr("add_offset", np.float32(offset))
    with pytest.raises(DchagError, match="no value decodes through") as err:
        _prep(src, tmp_path / "a.zarr", "t2m")
    assert said in str(err.value) and "packed.nc" in str(err.value)
    assert not (tmp_path / "a.zarr").exists()


def test_units_are_converted_where_unambiguous_and_refused_otherwise(tmp_path):
    kelvin = _prep(_file(tmp_path / "k.nc", "t2m", _field(), "K"), tmp_path / "k.zarr", "t2m")
    celsius = _prep(_file(tmp_path / "c.nc", "t2m", _field() - 273.15, "degC"),
                    tmp_path / "c.zarr", "t2m")
    np.testing.assert_allclose(celsius["data"].values, kelvin["data"].values, atol=1e-3)
    z = _field(5.5e4 / 9.80665)  # geopotential height in metres, on one pressure level
    pl = tmp_path / "zpl.nc"
    write_netcdf(pl, {"z": (("valid_time", "pressure_level", "latitude", "longitude"),
                            z[:, None])},
                 {"valid_time": TIMES, "pressure_level": np.array([500.0]), "latitude": LAT,
                  "longitude": LON})
    ds = xr.open_dataset(pl).load()
    ds.close()
    ds["z"].attrs["units"] = "m"
    ds.to_netcdf(pl)
    out = _prep(pl, tmp_path / "z.zarr", "z_500")
    assert 5.3e4 < float(out["data"].values.mean()) < 5.7e4  # m²/s², not metres
    with pytest.raises(DchagError, match=r"units 'furlongs'.*expected 'K'"):
        _prep(_file(tmp_path / "f.nc", "t2m", _field(), "furlongs"), tmp_path / "f.zarr",
              "t2m")


def test_a_regional_grid_is_refused_unless_a_region_is_asked_for(tmp_path):
    lat, lon = np.arange(60.0, 19.0, -1.0), np.arange(-130.0, -59.0, 1.0)
    la = np.deg2rad(lat)[:, None]
    field = np.broadcast_to(280 + 10 * np.cos(la) + 0 * lon, (4, lat.size, lon.size))
    src = _file(tmp_path / "reg.nc", "t2m", field.astype(np.float32), "K", lat=lat, lon=lon)
    with pytest.raises(DchagError, match="not global"):
        _prep(src, tmp_path / "g.zarr", "t2m")
    ds = _prep(src, tmp_path / "r.zarr", "t2m", region="25:55,-125:-65")
    assert ds.lat.values.min() >= 25 and ds.lat.values.max() <= 55
    lons = ds.lon.values
    assert lons.min() >= 235 - 1e-9 and lons.max() <= 295 + 1e-9
    expected = 280 + 10 * np.cos(np.deg2rad(ds.lat.values))[:, None]
    np.testing.assert_allclose(ds["data"].values[0, 0], np.broadcast_to(expected, (
        ds.lat.size, ds.lon.size)), atol=2e-2)
    with pytest.raises(DchagError, match="does not cover --region"):
        _prep(src, tmp_path / "x.zarr", "t2m", region="0:80,-125:-65")


@pytest.mark.parametrize("offset_min", [30, 20])
def test_times_must_be_whole_hours(tmp_path, offset_min):
    times = TIMES + np.timedelta64(offset_min, "m")
    src = _file(tmp_path / "half.nc", "t2m", _field(), "K", times=times)
    with pytest.raises(DchagError, match="not on a whole hour"):
        _prep(src, tmp_path / "h.zarr", "t2m")


def test_resume_and_eval_refuse_data_on_another_grid(tmp_path, era5_dir):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    prep_era5(Era5PrepConfig(sources=[era5_dir], out=a, channels="z_500,t2m"))
    prep_era5(Era5PrepConfig(sources=[era5_dir], out=b, channels="z_500,t2m",
                             resolution=11.25))
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(a), "--out", str(run),
                            "--lead", "12h", "--steps", "2", "--batch-size", "2",
                            "--workers", "0"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run), "--data", str(b),
                            "--steps", "4"])
    assert r.exit_code == 1 and "grid" in r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data", str(b), "--out",
                            str(tmp_path / "ev")])
    assert r.exit_code == 1 and "grid" in r.output


def test_mask_scores_match_cubes_by_source_not_position(tmp_path, sample_appl_zarr):
    run = tmp_path / "mae"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--steps", "2", "--batch-size", "2", "--workers", "0"])
    assert r.exit_code == 0, r.output
    recon = tmp_path / "rec.zarr"
    r = runner.invoke(app, ["predict", "masks", "--run", str(run), "--data",
                            str(sample_appl_zarr), "--samples", "all", "--out", str(recon)])
    assert r.exit_code == 0, r.output
    other = tmp_path / "other"
    other.mkdir()
    for f in SAMPLE_APPL.iterdir():
        shutil.copy(f, other / f.name)
    r = runner.invoke(app, ["prep", "appl", str(other / "manifest.csv"), "--size", "16",
                            "--out", str(tmp_path / "other.zarr")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "masks", "--recon", str(recon), "--data",
                            str(tmp_path / "other.zarr"), "--out", str(tmp_path / "s")])
    assert r.exit_code == 1 and "are not in this data" in r.output


def test_long_paths_are_stored_whole_and_bom_manifests_are_read(tmp_path):
    deep = tmp_path / ("d" * 120) / ("e" * 120) / ("f" * 60)
    deep.mkdir(parents=True)
    for f in SAMPLE_APPL.glob("plant_00[01].*"):
        shutil.copy(f, deep / f.name)
    rows = [{"path": "plant_000.hdr", "plant_id": "P0", "date": "2024-05-01"},
            {"path": "plant_001.hdr", "plant_id": "P1", "date": "2024-05-01"}]
    manifest = deep / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8-sig") as fh:  # with a BOM
        writer = csv.DictWriter(fh, fieldnames=["path", "plant_id", "date"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "a.zarr"
    r = runner.invoke(app, ["prep", "appl", str(manifest), "--size", "16", "--out", str(out)])
    assert r.exit_code == 0, r.output
    sources = [str(s) for s in zarr.open_group(str(out))["source"][:]]
    assert all(len(s) > 300 and Path(s).exists() for s in sources)
    r = runner.invoke(app, ["prep", "appl", str(deep / "plant_000.hdr"), "--size", "16",
                            "--out", str(out), "--append"])
    assert r.exit_code == 1 and "already in the store" in r.output


@pytest.mark.parametrize(("edit", "said"), [
    (("reflectance scale factor = 10000", "reflectance scale factor = inf"),
     "reflectance scale factor inf"),
    (("reflectance scale factor = 10000", "reflectance scale factor = 0"),
     "reflectance scale factor 0"),
    ((" 500.41 ,", " nan ,"), "wavelength of band 51 is nan"),
    ((" 500.41 ,", " -500.41 ,"), "wavelength of band 51 is -500.41"),
])
def test_an_impossible_reflectance_scale_or_wavelength_is_refused(tmp_path, edit, said):
    """A scale of inf makes every reflectance 0, a scale of 0 every one inf, and a NaN
    wavelength breaks the resampling to the common grid: each is one line, nothing written."""
    for f in SAMPLE_APPL.glob("plant_000.*"):
        shutil.copy(f, tmp_path / f.name)
    header = tmp_path / "plant_000.hdr"
    text = header.read_text()
    assert edit[0] in text
    header.write_text(text.replace(edit[0], edit[1], 1))
    out = tmp_path / "a.zarr"
    r = runner.invoke(app, ["prep", "appl", str(header), "--size", "16", "--out", str(out)])
    assert r.exit_code == 1 and said in r.output and "plant_000.hdr" in r.output
    assert not out.exists()


def test_absurd_counts_are_refused_or_bounded_with_a_note(tmp_path):
    src = _file(tmp_path / "t2m.nc", "t2m", _field(), "K")
    r = runner.invoke(app, ["prep", "era5", str(src), "--channels", "t2m", "--out",
                            str(tmp_path / "a.zarr"), "--retries", "1000"])
    assert r.exit_code == 1 and "--retries 1000 is more than 100" in r.output
    assert not (tmp_path / "a.zarr").exists()
    r = runner.invoke(app, ["prep", "era5", str(src), "--channels", "t2m", "--out",
                            str(tmp_path / "b.zarr"), "--workers", "100000"])
    assert r.exit_code == 0, r.output
    assert "--workers 100000 is more than 4 × the" in r.output
