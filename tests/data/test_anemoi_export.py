"""`dchag export anemoi`: era5.zarr in anemoi-datasets' gridded layout, checked against
that layout here and, where an interpreter with anemoi-datasets is named in
ANEMOI_PYTHON (it pins zarr 2, so it cannot live beside dchag), by anemoi itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from pipelines.data.units import G0
from tests.data.era5_formats import SAMPLE, write_invariant_netcdf
from tests.runner import app, one_error_line, runner

CHANNELS = "z_500,t_850,t2m,u10,v10,lsm,orography"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[zarr.Group, zarr.Group, Path]:
    tmp = tmp_path_factory.mktemp("anemoi")
    store = tmp / "era5.zarr"
    prep_era5(Era5PrepConfig(sources=[SAMPLE], out=store, channels=CHANNELS,
                             constants=[write_invariant_netcdf(tmp / "inv.nc")]))
    out = tmp / "era5-anemoi.zarr"
    r = runner.invoke(app, ["export", "anemoi", str(store), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "32 dates every 6 h × 7 variables" in r.output
    return (zarr.open_group(str(store), mode="r"), zarr.open_group(str(out), mode="r"), out)


def test_the_documented_gridded_layout(exported):
    _, g, _ = exported
    assert g.metadata.zarr_format == 2 and (Path(g.store.root) / ".zmetadata").is_file()
    assert g["data"].shape == (32, 7, 1, 32 * 64) and g["data"].dtype == np.float32
    assert g["dates"].dtype == np.dtype("datetime64[s]")
    assert str(g["dates"][0]) == "2018-01-01T00:00:00"
    for name in ("latitudes", "longitudes"):
        assert g[name].shape == (32 * 64,) and g[name].dtype == np.float64
    for name in ("mean", "stdev", "minimum", "maximum", "sums", "squares", "count",
                 "has_nans"):
        assert g[name].shape == (7,)
    a = dict(g.attrs)
    assert a["variables"] == ["z_500", "t_850", "2t", "10u", "10v", "lsm", "z"]
    assert a["field_shape"] == [32, 64] and a["frequency"] == "6h"
    assert a["dimensions"] == ["dates", "variables", "ensembles", "values"]
    assert a["start_date"] == "2018-01-01T00:00:00" and a["missing_dates"] == []
    assert a["constant_fields"] == ["lsm", "z"] and a["resolution"] == "5.625"
    assert a["variables_metadata"]["z_500"]["mars"] == {"param": "z", "levtype": "pl",
                                                         "levelist": 500}
    assert a["variables_metadata"]["2t"]["mars"]["levtype"] == "sfc"


def test_values_and_statistics_are_ours_exactly(exported):
    ours, g, _ = exported
    data = ours["data"][:].astype(np.float64)  # (t, c, lat, lon)
    scale = np.ones(7)
    scale[6] = G0  # orography (m) → surface geopotential z (m² s⁻²)
    want = (data * scale[None, :, None, None]).reshape(32, 7, 1, -1)
    np.testing.assert_allclose(g["data"][:], want.astype(np.float32), rtol=1e-7)
    lat = np.repeat(ours["lat"][:], 64)
    np.testing.assert_array_equal(g["latitudes"][:], lat)
    flat = want[:, :, 0].transpose(1, 0, 2).reshape(7, -1)
    np.testing.assert_allclose(g["mean"][:], flat.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(g["stdev"][:], flat.std(axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g["minimum"][:], flat.min(axis=1), rtol=1e-6)
    assert (g["count"][:] == 32 * 32 * 64).all() and not g["has_nans"][:].any()
    tend = np.diff(want[:, :, 0], axis=0).transpose(1, 0, 2).reshape(7, -1)
    np.testing.assert_allclose(g["statistics_tendencies_6h_mean"][:], tend.mean(axis=1),
                               atol=1e-9 * np.abs(flat).max())
    np.testing.assert_allclose(g["statistics_tendencies_6h_stdev"][:], tend.std(axis=1),
                               rtol=1e-5, atol=1e-9)
    assert g["statistics_tendencies_6h_maximum"][:][5] == 0  # the land-sea mask is constant


def test_a_gap_becomes_missing_dates(tmp_path):
    store = tmp_path / "era5.zarr"
    base = {"channels": "t2m,u10", "out": store}
    prep_era5(Era5PrepConfig(sources=[SAMPLE], period="2018-01-01:2018-01-02", **base))
    prep_era5(Era5PrepConfig(sources=[SAMPLE], period="2018-01-04:2018-01-08", append=True,
                             **base))
    out = tmp_path / "a.zarr"
    r = runner.invoke(app, ["export", "anemoi", str(store), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "4 missing (NaN, listed in missing_dates)" in r.output
    g = zarr.open_group(str(out), mode="r")
    assert g.attrs["missing_dates"] == [f"2018-01-03T{h:02d}:00:00" for h in (0, 6, 12, 18)]
    assert g["data"].shape[0] == 32 and np.isnan(g["data"][8:12]).all()
    assert not np.isnan(g["data"][7]).any() and not np.isnan(g["data"][12]).any()


def test_what_cannot_be_exported_is_refused(tmp_path, exported, sample_appl_zarr):
    r = runner.invoke(app, ["export", "anemoi", str(sample_appl_zarr), "--out",
                            str(tmp_path / "x.zarr")])
    assert r.exit_code == 1 and "x.zarr" not in os.listdir(tmp_path)
    one_error_line(r.output)
    _, _, out = exported
    r = runner.invoke(app, ["export", "anemoi", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 1
    one_error_line(r.output)


@pytest.mark.skipif(not os.environ.get("ANEMOI_PYTHON"),
                    reason="set ANEMOI_PYTHON to an interpreter with anemoi-datasets")
def test_anemoi_datasets_opens_the_export(exported):
    ours, g, out = exported
    script = ("import json, sys; from anemoi.datasets import open_dataset; "
              "from anemoi.datasets.validation import dataset_validation; "
              "ds = open_dataset(sys.argv[1]); "
              "print(json.dumps({'shape': list(ds.shape), 'variables': ds.variables, "
              "'frequency': str(ds.frequency), 'mean': ds.statistics['mean'].tolist(), "
              "'first': float(ds[0][2, 0, 100]), 'valid': dataset_validation(sys.argv[1])}))")
    done = subprocess.run([os.environ["ANEMOI_PYTHON"], "-c", script, str(out)],
                          capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["shape"] == [32, 7, 1, 2048] and seen["variables"][2] == "2t"
    assert seen["frequency"] == "6:00:00" and seen["valid"] is True
    np.testing.assert_allclose(seen["mean"], g["mean"][:])
    assert seen["first"] == pytest.approx(float(ours["data"][0, 2].ravel()[100]))
