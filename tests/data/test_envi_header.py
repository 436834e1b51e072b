"""ENVI header semantics: `data ignore value` masks pixels, `bbl` drops bad bands,
`fwhm` drives band resampling, `wavelength units` are read; each misuse is explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spectral.io.envi as envi
import xarray as xr
from spectral import BandResampler

from pipelines.data.appl_prep import ApplPrepConfig, prep_appl
from pipelines.errors import DchagError

WL = np.arange(398.0, 903.0, 8.0)  # 64 bands
RANGE = (400.0, 896.0)
BANDS = 32


def _write(path: Path, cube: np.ndarray, wl: np.ndarray = WL, **meta) -> Path:
    metadata = {"wavelength": [f"{w:g}" for w in wl], "wavelength units": "Nanometers"}
    metadata |= {k.replace("_", " "): v for k, v in meta.items()}
    envi.save_image(str(path), cube.astype(np.float32), interleave="bsq", metadata=metadata,
                    force=True, ext=".raw")
    return path


def _prep(sources, out: Path, **kw) -> xr.Dataset:
    prep_appl(ApplPrepConfig(sources=list(sources), out=out, **{
        "bands": BANDS, "size": 8, "spatial": "crop", "range_nm": RANGE, "ndvi": -1.0, **kw}))
    return xr.open_zarr(out)


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = 0.3 + 0.2 * np.sin((WL - 400) / 60.0)  # a smooth spectrum per pixel, scaled
    return (smooth[None, None, :] * rng.uniform(0.5, 1.5, size=(8, 8, 1))).astype(np.float32)


def test_data_ignore_value_is_masked_not_read(tmp_path: Path):
    scene = _scene()
    scene[0:2, 0:3, :] = -9999.0  # no data in every band
    scene[5, 6, 40] = -9999.0  # in one band only
    plain = _prep([_write(tmp_path / "p.hdr", _scene())], tmp_path / "p.zarr")
    with pytest.raises(DchagError, match="negative reflectance"):  # without the header's word
        _prep([_write(tmp_path / "x.hdr", scene)], tmp_path / "x.zarr")
    ds = _prep([_write(tmp_path / "c.hdr", scene, data_ignore_value=-9999)],
               tmp_path / "c.zarr")
    valid = ds["valid"].values[0].astype(bool)
    want = np.ones((8, 8), bool)
    want[0:2, 0:3] = False
    want[5, 6] = False
    np.testing.assert_array_equal(valid, want)
    cube, ref = ds["cube"].values[0].astype(np.float64), plain["cube"].values[0]
    assert (cube[:, ~valid] == 0).all()
    np.testing.assert_array_equal(cube[:, valid], ref[:, valid].astype(np.float64))
    assert not ds["mask"].values[0][~valid].any()  # never a plant pixel
    np.testing.assert_allclose(ds["mean"].values, cube[:, valid].mean(axis=1), rtol=1e-6)


def test_bad_bands_are_dropped_and_recorded(tmp_path: Path):
    scene = _scene()
    broken = scene.copy()
    broken[:, :, 20:23] = 5e4  # a detector fault: counts far out of range
    bbl = np.ones(WL.size, int)
    bbl[20:23] = 0
    with pytest.raises(DchagError, match="unscaled counts"):
        _prep([_write(tmp_path / "x.hdr", broken)], tmp_path / "x.zarr")
    ds = _prep([_write(tmp_path / "b.hdr", broken, bbl=[str(b) for b in bbl])],
               tmp_path / "b.zarr")
    keep = bbl.astype(bool)
    without = _prep([_write(tmp_path / "w.hdr", scene[:, :, keep], WL[keep])],
                    tmp_path / "w.zarr")
    np.testing.assert_array_equal(ds["cube"].values, without["cube"].values)
    assert int(ds["bad_bands"].values[0]) == 3 and int(without["bad_bands"].values[0]) == 0


def test_fwhm_resamples_by_spectral_response(tmp_path: Path):
    scene = _scene()
    fwhm = np.full(WL.size, 12.0)  # broad bands: 12 nm wide every 8 nm
    ds = _prep([_write(tmp_path / "f.hdr", scene, fwhm=[f"{f:g}" for f in fwhm])],
               tmp_path / "f.zarr")
    target = ds["wavelength"].values
    want = BandResampler(WL, target, fwhm, np.gradient(target)).matrix @ scene[3, 4]
    np.testing.assert_allclose(ds["cube"].values[0, :, 3, 4].astype(np.float64), want,
                               rtol=2e-3)  # float16 storage
    linear = _prep([_write(tmp_path / "l.hdr", scene)], tmp_path / "l.zarr")
    assert not np.allclose(linear["cube"].values, ds["cube"].values, rtol=1e-3)


def test_fwhm_with_gaps_between_bands_is_refused(tmp_path: Path):
    narrow = [f"{f:g}" for f in np.full(WL.size, 0.5)]
    with pytest.raises(DchagError, match="no band's fwhm reaches"):
        _prep([_write(tmp_path / "g.hdr", _scene(), fwhm=narrow)], tmp_path / "g.zarr",
              bands=200)  # 2.5 nm target bands between 0.5 nm bands every 8 nm
    assert not (tmp_path / "g.zarr").exists()


def test_wavelength_units_are_read(tmp_path: Path):
    nm = _prep([_write(tmp_path / "n.hdr", _scene())], tmp_path / "n.zarr")
    um = _prep([_write(tmp_path / "u.hdr", _scene(), WL / 1000,
                       wavelength_units="Micrometers")], tmp_path / "u.zarr")
    np.testing.assert_array_equal(nm["cube"].values, um["cube"].values)
    with pytest.raises(DchagError, match="wavelength units 'wavenumber' are not a length"):
        _prep([_write(tmp_path / "k.hdr", _scene(), wavelength_units="Wavenumber")],
              tmp_path / "k.zarr")


@pytest.mark.parametrize(("meta", "message"), [
    ({"bbl": ["1"] * 10}, "`bbl` has 10 values for 64 bands"),
    ({"bbl": ["0"] * 63 + ["1"]}, "leaves 1 of 64 bands"),
    ({"fwhm": ["x"] * 64}, "`fwhm` is not a list of numbers"),
    ({"data_ignore_value": "none"}, "is not a number"),
])
def test_malformed_header_fields_are_named(tmp_path: Path, meta: dict, message: str):
    hdr = _write(tmp_path / "m.hdr", _scene(), **meta)
    with pytest.raises(DchagError, match=message) as err:
        _prep([hdr], tmp_path / "m.zarr")
    assert "m.hdr" in str(err.value)


def test_the_command_line_reports_what_the_header_removed(tmp_path: Path):
    from typer.testing import CliRunner

    from dchag_cli.app import app

    scene = _scene()
    scene[0, 0, :] = -1.0
    bbl = ["1"] * 60 + ["0"] * 4
    hdr = _write(tmp_path / "plant.hdr", scene, data_ignore_value=-1, bbl=bbl)
    result = CliRunner().invoke(app, ["prep", "appl", str(hdr), "--out",
                                      str(tmp_path / "a.zarr"), "--bands", "32", "--size",
                                      "8", "--range", "400:860"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "plant.hdr: 4 bad bands (bbl) left out" in text
    assert "plant.hdr: 1 of 64 output pixels masked (data ignore value)" in text


def test_an_unknown_interleave_is_refused(tmp_path: Path):
    hdr = _write(tmp_path / "i.hdr", _scene())
    text = hdr.read_text()
    assert "interleave = bsq" in text
    hdr.write_text(text.replace("interleave = bsq", "interleave = xyz"))
    with pytest.raises(DchagError, match="interleave = xyz") as err:
        _prep([hdr], tmp_path / "i.zarr")
    assert "i.hdr" in str(err.value) and not (tmp_path / "i.zarr").exists()


def test_a_manifest_row_missing_its_values_is_refused(tmp_path: Path):
    _write(tmp_path / "p.hdr", _scene())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,plant_id,date\np.hdr\n")
    with pytest.raises(DchagError, match=r"line 2 has 1 value\(s\) for the header's 3") as err:
        _prep([manifest], tmp_path / "m.zarr")
    assert "manifest.csv" in str(err.value)
    manifest.write_text("path,plant_id,date\np.hdr,P1,2024-05-01,extra\n")
    with pytest.raises(DchagError, match="line 2 has 4 value"):
        _prep([manifest], tmp_path / "m.zarr")
    manifest.write_text("path,plant_id,date\np.hdr,P1,\n")  # an empty value is a value
    assert _prep([manifest], tmp_path / "m.zarr").sizes["sample"] == 1
