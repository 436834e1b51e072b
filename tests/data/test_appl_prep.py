"""`prep appl`: every ENVI layout reads the same, spectra resample exactly, bad cubes are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipelines.data.appl_prep import ApplPrepConfig, prep_appl
from pipelines.data.datasets import Normalizer, SampleReader
from pipelines.errors import DchagError
from pipelines.sample.appl import Sensor, add_sensor_noise, plant_scene, write_envi

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APPL = REPO / "sample_data" / "appl"
WL = np.arange(398.0, 903.0, 8.0)  # 64 bands, exact in the header's 2 decimals


def _cube(tmp: Path, name: str, data: np.ndarray, wl: np.ndarray = WL, interleave: str = "bsq",
          dtype: str = "float32", byteorder: int = 0) -> Path:
    return write_envi(tmp / f"{name}.hdr", data, wl, interleave, dtype, byteorder)


def _prep(sources, out: Path, **kw) -> xr.Dataset:
    prep_appl(ApplPrepConfig(sources=list(sources), out=out, **{"bands": 50, "size": 8, **kw}))
    return xr.open_zarr(out)


def _no_leftovers(folder: Path) -> bool:
    return not any(".partial-" in p.name for p in folder.iterdir())


def test_shipped_sample_becomes_a_complete_store(tmp_path: Path):
    ds = _prep([SAMPLE_APPL / "manifest.csv"], tmp_path / "appl.zarr", bands=500, size=32)
    assert ds["cube"].shape == (4, 500, 32, 32) and ds["cube"].dtype == np.float16
    assert ds["wavelength"].values[0] == 400 and ds["wavelength"].values[-1] == 900
    assert "wavelength" in ds["cube"].coords and ds["wavelength"].attrs["units"] == "nm"
    assert ds["cube"].attrs["units"] == "1" and ds["cube"].attrs["long_name"]
    assert ds["cube"].sel(band=0).wavelength.item() == 400  # CF: a coordinate of the cube
    assert list(ds["label"].values) == ["control", "drought", "control", "drought"]
    assert set(ds["plant_id"].values) == {"P00", "P01", "P02", "P03"}
    assert ds["mask"].dtype == np.uint8 and 0 < ds["mask"].values.mean() < 0.6
    cube = ds["cube"].values.astype(np.float64)
    np.testing.assert_allclose(ds["mean"].values, cube.mean(axis=(0, 2, 3)), rtol=1e-5)
    assert ds.attrs["provenance"]["stage"] == "prep appl"
    assert len(ds.attrs["provenance"]["inputs"]) == 4
    # physically sensible: plants reflect much more at 800 nm than at 670 nm
    plant = ds["mask"].values.astype(bool)
    nir, red = cube[:, 400], cube[:, 270]  # 800 nm and 670 nm on the 1 nm-ish grid
    assert nir[plant].mean() > 3 * red[plant].mean()


def test_all_interleaves_byte_orders_and_dtypes_read_the_same(tmp_path: Path):
    rng = np.random.default_rng(0)
    scene = rng.uniform(0.05, 0.6, size=(8, 8, WL.size))
    paths = [_cube(tmp_path, f"c{i}", scene, interleave=il, dtype=dt, byteorder=bo)
             for i, (il, dt, bo) in enumerate([("bsq", "float32", 0), ("bil", "uint16", 0),
                                               ("bip", "uint16", 1), ("bip", "float32", 1)])]
    cubes = _prep(paths, tmp_path / "a.zarr", dtype="float32")["cube"].values
    for other in cubes[1:]:
        np.testing.assert_allclose(other, cubes[0], atol=1e-4)  # uint16 ×10000 rounding


def test_spectra_linear_in_wavelength_are_resampled_exactly(tmp_path: Path):
    spectrum = 0.1 + 0.0005 * (WL - 398)
    path = _cube(tmp_path, "lin", np.broadcast_to(spectrum, (8, 8, WL.size)).copy())
    ds = _prep([path], tmp_path / "a.zarr", dtype="float32", range_nm=(410.0, 890.0))
    expected = 0.1 + 0.0005 * (ds["wavelength"].values - 398)
    np.testing.assert_allclose(ds["cube"].values[0, :, 3, 3], expected, rtol=1e-6)


def test_ndvi_mask_matches_the_true_plant(tmp_path: Path):
    rng = np.random.default_rng(5)
    scene, truth = plant_scene(64, Sensor(), rng)
    path = write_envi(tmp_path / "p.hdr", add_sensor_noise(scene, rng), Sensor().wavelengths,
                      "bil", "uint16", 0)
    mask = _prep([path], tmp_path / "a.zarr", size=64)["mask"].values[0].astype(bool)
    assert (mask & truth).sum() / (mask | truth).sum() > 0.95


def test_dark_white_calibration_recovers_reflectance(tmp_path: Path):
    refl = np.full((6, 8, WL.size), 0.3)
    dark = np.full((2, 8, WL.size), 100.0)
    white = np.full((2, 8, WL.size), 3100.0)
    raw = dark[:1] + refl * (white[:1] - dark[:1])
    src = _cube(tmp_path, "raw", raw)
    ds = _prep([src], tmp_path / "a.zarr", dtype="float32",
               dark=_cube(tmp_path, "dark", dark), white=_cube(tmp_path, "white", white))
    np.testing.assert_allclose(ds["cube"].values, 0.3, atol=1e-5)


def test_append_adds_samples_and_refuses_mismatches(tmp_path: Path):
    a = _cube(tmp_path, "a", np.full((8, 8, WL.size), 0.2))
    b = _cube(tmp_path, "b", np.full((8, 8, WL.size), 0.4))
    out = tmp_path / "appl.zarr"
    _prep([a], out)
    prep_appl(ApplPrepConfig(sources=[b], out=out, bands=50, size=8, append=True))
    ds = xr.open_zarr(out)
    assert ds["cube"].shape[0] == 2 and len(ds.attrs["history"]) == 1
    np.testing.assert_allclose(ds["mean"].values, 0.3, atol=1e-3)
    with pytest.raises(DchagError, match="already in the store"):
        prep_appl(ApplPrepConfig(sources=[b], out=out, bands=50, size=8, append=True))
    with pytest.raises(DchagError, match="same --bands/--range/--size"):
        prep_appl(ApplPrepConfig(sources=[b], out=out, bands=50, size=16, append=True))
    assert xr.open_zarr(out)["cube"].shape[0] == 2


def test_header_without_binary_and_binary_without_header(tmp_path: Path):
    hdr = _cube(tmp_path, "a", np.full((4, 4, WL.size), 0.2))
    shutil.move(hdr.with_suffix(".raw"), tmp_path / "elsewhere.raw")
    with pytest.raises(DchagError, match=r"a\.hdr: ENVI header without its binary"):
        _prep([hdr], tmp_path / "x.zarr")
    with pytest.raises(DchagError, match=r"elsewhere\.raw: binary without its ENVI header"):
        _prep([tmp_path / "elsewhere.raw"], tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists() and _no_leftovers(tmp_path)


@pytest.mark.parametrize(("change", "message"), [(-100, "truncated"), (+100, "sizes need")])
def test_binary_size_must_match_the_header(tmp_path: Path, change: int, message: str):
    hdr = _cube(tmp_path, "a", np.full((4, 4, WL.size), 0.2))
    raw = hdr.with_suffix(".raw")
    data = raw.read_bytes()
    raw.write_bytes(data[:change] if change < 0 else data + b"\0" * change)
    with pytest.raises(DchagError, match=message):
        _prep([hdr], tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


def test_missing_wavelengths_are_explained_and_can_be_supplied(tmp_path: Path):
    hdr = _cube(tmp_path, "a", np.full((4, 4, WL.size), 0.2))
    text = hdr.read_text()
    start = text.index("wavelength = {")
    hdr.write_text(text[:start] + text[text.index("}", start) + 1:])
    with pytest.raises(DchagError, match=r"no wavelength list.*--wavelengths"):
        _prep([hdr], tmp_path / "x.zarr")
    wl_file = tmp_path / "wl.txt"
    wl_file.write_text("\n".join(f"{w:.3f}" for w in WL))
    assert _prep([hdr], tmp_path / "x.zarr", wavelengths=wl_file)["cube"].shape[0] == 1


def test_cubes_with_other_band_counts_are_resampled_or_refused_with_reason(tmp_path: Path):
    a = _cube(tmp_path, "a", np.full((4, 4, WL.size), 0.2))
    wide = np.linspace(380, 920, 90)
    b = _cube(tmp_path, "b", np.full((4, 4, wide.size), 0.2), wl=wide)
    ds = _prep([a, b], tmp_path / "x.zarr")
    assert list(ds["native_bands"].values) == [64, 90]
    narrow = np.linspace(450, 850, 30)
    c = _cube(tmp_path, "c", np.full((4, 4, narrow.size), 0.2), wl=narrow)
    with pytest.raises(DchagError, match=r"c\.hdr: requested 400–900 nm but the sensor covers"):
        _prep([a, c], tmp_path / "y.zarr")


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN values"),
                                                (-0.2, "negative reflectance"),
                                                (2500.0, "unscaled counts")])
def test_invalid_reflectance_is_refused(tmp_path: Path, value: float, message: str):
    data = np.full((4, 4, WL.size), 0.2)
    data[1, 2, 5] = value
    hdr = _cube(tmp_path, "bad", data)
    with pytest.raises(DchagError, match=message):
        _prep([hdr], tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists() and _no_leftovers(tmp_path)


def test_the_training_loader_returns_the_stored_values(tmp_path: Path):
    """Whole chunks read straight from their files (or through zarr when compressed),
    channels and crops selected in memory: exactly the stored numbers."""
    from pipelines.run.config import TrainConfig
    from pipelines.train.data import StepBatches, describe_artifact

    for compress in (False, True):
        out = tmp_path / f"appl-{compress}.zarr"
        _prep([SAMPLE_APPL], out, size=16, compress=compress)
        stored = xr.open_zarr(out)["cube"].values
        bands = stored.shape[1]
        reader = SampleReader(out, "cube", list(range(bands)))
        assert (reader._direct is not None) == (not compress)
        np.testing.assert_array_equal(reader.read(2), stored[2])
        np.testing.assert_array_equal(SampleReader(out, "cube", [0, 10]).read(1),
                                      stored[1, [0, 10]])
        crop = np.empty((bands, 8, 8), stored.dtype)
        reader.read_into(3, crop, 4, 2)
        np.testing.assert_array_equal(crop, stored[3, :, 4:12, 2:10])
        cfg = TrainConfig(task="mae", data=str(out), batch_size=3, steps=4, patch=4,
                          augment="none")  # the stored values, not their mirror images
        art = describe_artifact(out, cfg)
        batch = StepBatches(art, cfg, "train", 0, 1, 16)[1]
        assert batch["x"].dtype == torch.float16 and batch["x"].shape == (3, bands, 16, 16)
        for cube in batch["x"].numpy():
            assert any(np.array_equal(cube, s) for s in stored)
    norm = Normalizer(torch.from_numpy(art.mean), torch.from_numpy(art.std))(
        torch.from_numpy(stored).float()[0])
    assert abs(float(norm.mean())) < 1.0
