"""Regridding is exact where it must be, conservative where it claims, and agrees with CDO."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines.data.grid import LatLonGrid, check_regular, weatherbench_grid
from pipelines.data.regrid import build_regridder
from pipelines.data.regrid_backends import make_regridder, read_weights_file
from pipelines.errors import DchagError
from tests.conftest import write_netcdf

ERA5_LIKE = LatLonGrid(lat=np.linspace(90, -90, 181), lon=np.arange(360) * 1.0)
TARGET = weatherbench_grid()


def _mesh(grid: LatLonGrid) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(grid.lat, grid.lon, indexing="ij")


def test_weatherbench_grid_is_32_by_64_cell_centres():
    assert TARGET.shape == (32, 64)
    assert TARGET.lat[0] == -87.1875 and TARGET.lat[-1] == 87.1875
    assert TARGET.lon[0] == 0 and TARGET.lon[-1] == 354.375


def test_bilinear_is_exact_on_fields_linear_in_lat_and_lon_away_from_the_seam():
    lat, lon = _mesh(ERA5_LIKE)
    out = build_regridder(ERA5_LIKE, TARGET, "bilinear").apply(3.0 * lat - 0.5 * lon + 7.0)
    tlat, tlon = _mesh(TARGET)
    inside = tlon <= 359.0  # beyond the last column the longitude wraps to 0
    np.testing.assert_allclose(out[inside], (3.0 * tlat - 0.5 * tlon + 7.0)[inside], atol=1e-4)


def test_bilinear_bridges_the_longitude_seam_periodically():
    src = LatLonGrid(lat=np.linspace(-90, 90, 19), lon=np.arange(0, 360, 10.0))  # last col 350
    tgt = LatLonGrid(lat=np.array([0.0]), lon=np.array([355.0, 357.5]))
    field = np.zeros(src.shape)
    field[:, 0] = 10.0  # lon 0 (= 360)
    out = build_regridder(src, tgt, "bilinear").apply(field)
    np.testing.assert_allclose(out[0], [5.0, 7.5])


def test_poles_beyond_the_outermost_source_row_take_that_row():
    src = LatLonGrid(lat=np.linspace(-80, 80, 17), lon=np.arange(0, 360, 10.0))
    lat, _ = _mesh(src)
    out = build_regridder(src, TARGET, "bilinear").apply(lat)
    assert out[0].min() == pytest.approx(-80) and out[-1].max() == pytest.approx(80)
    assert np.all(np.isfinite(out))


def test_orientation_of_the_source_does_not_matter():
    north_first = ERA5_LIKE
    south_first = LatLonGrid(lat=north_first.lat[::-1], lon=north_first.lon)
    dateline = LatLonGrid(lat=north_first.lat, lon=np.concatenate([np.arange(-180, 0.0),
                                                                   np.arange(0, 180.0)]))
    lat, lon = _mesh(north_first)
    field = np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(2 * lon)) + lat / 90
    ref = build_regridder(north_first, TARGET, "bilinear").apply(field)
    flipped = build_regridder(south_first, TARGET, "bilinear").apply(field[::-1])
    rolled = build_regridder(dateline, TARGET, "bilinear").apply(np.roll(field, 180, axis=1))
    np.testing.assert_allclose(flipped, ref, atol=1e-6)
    np.testing.assert_allclose(rolled, ref, atol=1e-6)


@pytest.mark.parametrize("src_res", [1.0, 0.75, 2.5])
def test_conservative_preserves_the_area_weighted_global_mean(src_res):
    n = round(180 / src_res)
    src = LatLonGrid(lat=np.linspace(90 - src_res / 2, -90 + src_res / 2, n),
                     lon=np.arange(round(360 / src_res)) * src_res)
    rng = np.random.default_rng(0)
    field = rng.normal(size=src.shape) + 5
    out = build_regridder(src, TARGET, "conservative").apply(field.astype(np.float64))

    def area_mean(values: np.ndarray, lat: np.ndarray, res: float) -> float:
        band = np.sin(np.deg2rad(np.clip(lat + res / 2, -90, 90))) - np.sin(
            np.deg2rad(np.clip(lat - res / 2, -90, 90)))
        return float((values * band[:, None]).sum() / (band.sum() * values.shape[1]))

    assert area_mean(out, TARGET.lat, 5.625) == pytest.approx(
        area_mean(field, src.lat, src_res), abs=1e-6)


def test_smooth_field_error_is_small_and_reported():
    lat, lon = _mesh(ERA5_LIKE)

    def analytic(la, lo):
        return np.cos(np.deg2rad(la)) ** 2 * np.cos(np.deg2rad(3 * lo)) + np.sin(np.deg2rad(la))

    tlat, tlon = _mesh(TARGET)
    errors = {m: float(np.abs(build_regridder(ERA5_LIKE, TARGET, m).apply(analytic(lat, lon))
                              - analytic(tlat, tlon)).max()) for m in ("bilinear", "conservative")}
    print(f"max |regridded - analytic| from 1° to 5.625°: {errors}")
    assert errors["bilinear"] < 5e-4  # interpolation error, O(h²)
    assert errors["conservative"] < 0.02  # cell averages differ from point values, O(H²)


def test_non_regular_grids_are_refused_with_a_reason():
    with pytest.raises(DchagError, match="not 1-D"):
        check_regular(np.zeros((3, 4)), np.zeros((3, 4)), "curvilinear.nc")
    with pytest.raises(DchagError, match="not strictly monotonic"):
        check_regular(np.array([0, 1, 0.5]), np.arange(4.0), "shuffled.nc")
    with pytest.raises(DchagError, match="360° or more"):
        check_regular(np.arange(3.0), np.arange(0, 361.0), "seam.nc")


def test_xesmf_weights_file_is_applied_in_the_sources_own_latitude_order(tmp_path: Path):
    src = LatLonGrid(lat=np.array([10.0, 0.0]), lon=np.array([0.0, 90.0, 180.0, 270.0]))
    tgt = LatLonGrid(lat=np.array([5.0]), lon=np.array([0.0]))
    # target point 1 = mean of source (lat 10, lon 0) and (lat 0, lon 0): flat 1 and 5, 1-based
    path = write_netcdf(tmp_path / "w.nc", {
        "S": (("n_s",), np.array([0.5, 0.5])), "row": (("n_s",), np.array([1, 1])),
        "col": (("n_s",), np.array([1, 5]))}, {})
    regridder = read_weights_file(path, src, tgt)
    field = np.array([[2.0, 0, 0, 0], [4.0, 0, 0, 0]])
    assert regridder.apply(field)[0, 0] == pytest.approx(3.0)
    with pytest.raises(DchagError, match="regenerate the weights"):
        read_weights_file(path, LatLonGrid(lat=np.array([0.0]), lon=np.array([0.0, 1.0])), tgt)


def _xesmf_works() -> bool:
    try:
        import xesmf  # noqa: F401  (imports esmpy)
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_xesmf_works(), reason="xESMF and esmpy are installed here: "
                    "test_xesmf_backend_agrees_with_the_native_one runs instead")
def test_xesmf_backend_without_esmpy_names_the_fix():
    with pytest.raises(DchagError, match="conda-forge"):
        make_regridder(ERA5_LIKE, TARGET, "bilinear", "xesmf", None)


@pytest.mark.skipif(not _xesmf_works(), reason="needs xESMF with esmpy (conda install -c "
                    "conda-forge esmpy; not on PyPI): the default backend does not")
def test_xesmf_backend_agrees_with_the_native_one():
    lat, lon = _mesh(ERA5_LIKE)
    field = (250 + 30 * np.cos(np.deg2rad(lat)) + 5 * np.sin(np.deg2rad(3 * lon))
             * np.cos(np.deg2rad(lat)) ** 2).astype(np.float32)
    ours = make_regridder(ERA5_LIKE, TARGET, "bilinear", "native", None).apply(field)
    theirs = make_regridder(ERA5_LIKE, TARGET, "bilinear", "xesmf", None).apply(field)
    np.testing.assert_allclose(theirs, ours, atol=1e-3)


@pytest.mark.skipif(shutil.which("cdo") is None, reason="CDO (the independent oracle) is not "
                    "installed: apt-get install cdo")
@pytest.mark.parametrize(("method", "cdo_op", "tol"), [("bilinear", "genbil", 1e-5),
                                                     ("conservative", "gencon", 1e-4)])
def test_agrees_with_cdo_weights_on_an_era5_oriented_grid(tmp_path: Path, method, cdo_op, tol):
    src = LatLonGrid(lat=np.linspace(90, -90, 73), lon=np.arange(144) * 2.5)
    lat, lon = _mesh(src)
    field = (250 + 30 * np.cos(np.deg2rad(lat)) + 5 * np.sin(np.deg2rad(3 * lon))
             * np.cos(np.deg2rad(lat)) ** 2).astype(np.float32)
    source_file = write_netcdf(tmp_path / "src.nc", {"t2m": (("lat", "lon"), field)},
                               {"lat": src.lat, "lon": src.lon})
    (tmp_path / "grid.txt").write_text(
        "gridtype = lonlat\nxsize = 64\nysize = 32\nxfirst = 0\nxinc = 5.625\n"
        "yfirst = -87.1875\nyinc = 5.625\n")
    weights = tmp_path / "weights.nc"
    subprocess.run(["cdo", "-s", f"{cdo_op},{tmp_path / 'grid.txt'}", str(source_file),
                    str(weights)], check=True, capture_output=True)
    theirs = read_weights_file(weights, src, TARGET).apply(field)
    ours = build_regridder(src, TARGET, method).apply(field)
    assert np.abs(ours - theirs).max() < tol * np.abs(field).max()


def test_the_sparse_kernel_equals_the_matrix_product_in_every_mode():
    """Gathered or in place, batched over many fields or one, float32, float64 or packed
    int16, from whole fields or from only the rows it needs: W @ x, always."""
    import scipy.sparse as sp

    from pipelines.data import regrid_kernel
    from pipelines.data.regrid_kernel import SparseApply

    rng = np.random.default_rng(0)
    src = LatLonGrid(lat=np.linspace(90, -90, 361), lon=np.arange(0, 360, 0.5))
    fields = rng.normal(size=(7, 361, 720)).astype(np.float32)
    for method in ("bilinear", "conservative"):
        reg = build_regridder(src, TARGET, method)
        w = sp.kron(reg.w_lat, reg.w_lon, format="csr")
        want = (w @ fields.reshape(7, -1).astype(np.float64).T).T
        kernel = SparseApply(w, src.shape)
        assert kernel.gather == (method == "bilinear")
        np.testing.assert_allclose(kernel.apply(fields), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(kernel.apply(fields.astype(np.float64)), want, rtol=1e-12)
        np.testing.assert_allclose(reg.apply(fields).reshape(7, -1), want, rtol=1e-5,
                                   atol=1e-5)
        packed = rng.integers(-3000, 3000, size=(3, 361, 720)).astype(np.int16)
        np.testing.assert_allclose(kernel.apply(packed),
                                   (w @ packed.reshape(3, -1).T.astype(np.float64)).T,
                                   rtol=1e-6, atol=1e-3)
        rows = fields[:, kernel.rows].reshape(7, -1)  # what a row-restricted read returns
        np.testing.assert_allclose(
            kernel.apply_points(kernel.gather_points(rows, from_rows=True)), want,
            rtol=1e-5, atol=1e-5)
    old = regrid_kernel.BLOCK_NNZ
    try:  # one field per block product gives the same as many
        regrid_kernel.BLOCK_NNZ = 1
        one = SparseApply(w, src.shape).apply(fields)
    finally:
        regrid_kernel.BLOCK_NNZ = old
    np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-5)
