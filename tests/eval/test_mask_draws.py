"""`predict masks --draws`: several masks per cube, and `eval masks` scores recomputed
independently from reconstruction.zarr and appl.zarr."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr
from skimage.restoration import inpaint_biharmonic

from tests.runner import app, runner


@pytest.fixture(scope="module")
def scored(tmp_path_factory, sample_appl_zarr):
    tmp = tmp_path_factory.mktemp("draws")
    run = tmp / "run"
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(run),
                            "--steps", "4", "--workers", "0", "--batch-size", "2",
                            "--ckpt-every", "4", "--val-every", "4"])
    assert r.exit_code == 0, r.output
    for name, draws in (("one.zarr", "1"), ("three.zarr", "3")):
        r = runner.invoke(app, ["predict", "masks", "--run", str(run), "--data",
                                str(sample_appl_zarr), "--samples", "all", "--mask-ratio",
                                "0.5", "--draws", draws, "--out", str(tmp / name)])
        assert r.exit_code == 0, r.output
    assert "4 cubes under 3 masks each" in r.output
    r = runner.invoke(app, ["eval", "masks", "--recon", str(tmp / "three.zarr"), "--data",
                            str(sample_appl_zarr), "--out", str(tmp / "scores")])
    assert r.exit_code == 0, r.output
    return tmp, r.output


def test_each_draw_is_its_own_mask_and_draw_0_is_the_single_draw(scored):
    tmp, _ = scored
    one = zarr.open_group(str(tmp / "one.zarr"), mode="r")
    three = zarr.open_group(str(tmp / "three.zarr"), mode="r")
    assert three["reconstruction"].shape[0] == 12 and three.attrs["draws"] == 3
    assert three["draw"][:].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert three["sample_index"][:].tolist() == [0, 1, 2, 3] * 3
    masks = three["masked"][:].astype(bool)
    np.testing.assert_array_equal(masks[:4], one["masked"][:].astype(bool))
    np.testing.assert_array_equal(three["reconstruction"][:4], one["reconstruction"][:])
    assert not np.array_equal(masks[:4], masks[4:8])
    assert all(m.mean() == pytest.approx(0.5) for m in masks)


def test_scores_recomputed_from_the_stores_agree(scored, sample_appl_zarr):
    tmp, output = scored
    s = xr.open_zarr(tmp / "scores" / "mask_scores.zarr")
    rec = zarr.open_group(str(tmp / "three.zarr"), mode="r")
    data = zarr.open_group(str(sample_appl_zarr), mode="r")
    model_mse, model_sam, bh_mse = [], [], []
    for i, k in enumerate(rec["sample_index"][:]):
        orig = data["cube"][k].astype(np.float64)
        hidden = rec["masked"][i].astype(bool)
        got = rec["reconstruction"][i].astype(np.float64)
        model_mse.append(((got - orig)[:, hidden] ** 2).mean())
        px = hidden & data["mask"][k].astype(bool)
        a, b = orig[:, px], got[:, px]
        cos = (a * b).sum(0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)
        # a draw may hide no plant pixel of a cube: no angle to score (NaN in the store too)
        model_sam.append(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean() if px.any()
                         else np.nan)
        bh = np.moveaxis(inpaint_biharmonic(np.moveaxis(orig, 0, -1), hidden,
                                            channel_axis=-1), -1, 0)
        bh_mse.append(((bh - orig)[:, hidden] ** 2).mean())
    by = s.mse_by_predictor
    np.testing.assert_allclose(by.sel(predictor="model"), model_mse, rtol=1e-6)
    np.testing.assert_allclose(by.sel(predictor="biharmonic"), bh_mse, rtol=1e-6)
    np.testing.assert_allclose(s.sam_deg_by_predictor.sel(predictor="model"), model_sam,
                               rtol=1e-6)
    paired = s.paired_rmse.sel(baseline="biharmonic")
    diff = np.sqrt(model_mse) - np.sqrt(bh_mse)
    assert paired.sel(paired_stat="mean").item() == pytest.approx(diff.mean())
    assert paired.sel(paired_stat="wins").item() == pytest.approx((diff < 0).mean())
    assert paired.sel(paired_stat="low") <= paired.sel(paired_stat="mean") <= \
        paired.sel(paired_stat="high")
    assert s.attrs["cubes"] == 4 and s.attrs["draws"] == 3
    assert s.band_rel_error_by_predictor.shape == (6, 500)
    scored_plants = np.isfinite(s.sam_deg_by_predictor.values)  # NaN: no hidden plant
    assert scored_plants.any()
    assert (np.isfinite(s.ndvi_abs_error_by_predictor.values) == scored_plants).all()
    assert (np.isfinite(s.red_edge_abs_error_nm_by_predictor.values) == scored_plants).all()
    assert "masked RMSE" in output and "mean SAM (degrees)" in output
    assert "(cube, mask) pairs from 4 cubes" in output
    assert "4 cubes × 3 mask draws" in output
    assert (tmp / "scores" / "spectra.png").read_bytes()[:4] == b"\x89PNG"


def test_the_verdicts_read_back_are_the_ones_printed(scored):
    from pipelines.eval.mask_store import read_mask_verdicts

    tmp, output = scored
    lines = read_mask_verdicts(tmp / "scores" / "mask_scores.zarr")
    assert len(lines) == 2
    flat = " ".join(output.split())
    for line in lines:
        assert " ".join(line.split()) in flat


def test_draws_below_one_are_refused(scored, sample_appl_zarr):
    tmp, _ = scored
    r = runner.invoke(app, ["predict", "masks", "--run", str(tmp / "run"), "--data",
                            str(sample_appl_zarr), "--draws", "0", "--out",
                            str(tmp / "none.zarr")])
    assert r.exit_code == 1 and "--draws 0" in r.output
    assert not (tmp / "none.zarr").exists()
