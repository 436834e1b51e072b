"""`dchag bench parity`: paired ratios over seeds, with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipelines.bench.parity import ParityTable, bootstrap_mean_interval
from tests.runner import app, runner


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_agreement():
    lo, hi = bootstrap_mean_interval(np.array([0.98, 1.0, 1.02]))
    assert lo < 1.0 < hi and hi - lo < 0.04 + 1e-12
    assert bootstrap_mean_interval(np.array([1.0, 1.0, 1.0])) == (1.0, 1.0)
    wide = bootstrap_mean_interval(np.array([0.8, 1.0, 1.2]))
    assert wide[1] - wide[0] > hi - lo


def test_ratios_are_paired_by_seed():
    # seed 1 is harder for every variant; paired, the variant is exactly 2 % worse
    values = np.array([[1.0, 2.0, 1.5], [1.02, 2.04, 1.53]])
    t = ParityTable("mae", "rmse", ["baseline", "L"], [0, 1, 2], values, values)
    rows = t.summary()
    assert rows[1]["ratio_mean"] == pytest.approx(1.02)
    assert rows[1]["ratio_lo"] == pytest.approx(1.02) and rows[1]["ratio_hi"] == pytest.approx(1.02)
    assert rows[0]["seed_cv"] == pytest.approx(np.std([1, 2, 1.5], ddof=1) / 1.5)


@pytest.mark.slow(seconds=30)
def test_bench_parity_trains_every_variant_and_seed(tmp_path, sample_era5_zarr,
                                                    sample_appl_zarr):
    out = tmp_path / "parity.zarr"
    r = runner.invoke(app, ["bench", "parity", "--seeds", "2", "--variants", "baseline,L",
                            "--era5", str(sample_era5_zarr), "--appl", str(sample_appl_zarr),
                            "--forecast-steps", "2", "--mae-steps", "2", "--lead", "6h",
                            "--work", str(tmp_path / "runs"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = xr.open_zarr(out)
    assert ds.variant.values.tolist() == ["baseline", "L"] and ds.seed.values.tolist() == [0, 1]
    for task in ("forecast", "mae"):
        metric = ds[f"{task}_metric"].values
        assert metric.shape == (2, 2) and np.isfinite(metric).all()
        np.testing.assert_allclose(ds[f"{task}_ratio"].values, metric / metric[0])
        lo, mid, hi = (ds[f"{task}_ratio_{k}"].values[1] for k in ("lo", "mean", "hi"))
        assert lo <= mid <= hi
        ratio = metric[1] / metric[0]  # two seeds: the t-interval by hand (1 d.o.f.)
        d = np.log(ratio)
        se = d.std(ddof=1) / np.sqrt(2)
        assert ds[f"{task}_t_hi"].values[1] == pytest.approx(np.exp(d.mean() + 12.706205 * se),
                                                            rel=1e-5)
        assert ds[f"{task}_loss_below_1pct"].values[1] == bool(
            np.exp(d.mean() + 6.313752 * se) < 1.01)
    # each forecast metric is that run's own score, read back from its scores.zarr
    scores = xr.open_zarr(tmp_path / "runs" / "forecast-L-s1" / "eval" / "scores.zarr")
    rmse = scores.rmse.sel(region="global")
    expected = float((rmse.sel(forecaster="model") / rmse.sel(forecaster="persistence")).mean())
    assert ds.forecast_metric.sel(variant="L", seed=1).item() == pytest.approx(expected)
    assert (tmp_path / "parity.png").read_bytes()[:4] == b"\x89PNG"
    assert "vs baseline" in r.output and "<1 % loss" in r.output
    assert "note: with 2 seeds the intervals are not 95 % confidence intervals" in r.output
    assert "not 95 %" in ds.attrs["note"]


def test_the_last_validation_loss_skips_records_without_one_and_cut_lines(tmp_path):
    from pipelines.bench.parity import last_val_loss

    assert np.isnan(last_val_loss(tmp_path))  # no metrics yet
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 2.0}\n{"step": 2, "val_loss": 1.5}\n'
        '{"step": 3, "loss": 1.0, "val_loss": null}\n{"step": 4, "val_lo')
    assert last_val_loss(tmp_path) == 1.5


def test_paired_t_matches_a_hand_computation_on_fixed_ratios():
    from pipelines.bench.parity import paired_t

    ratios = np.array([0.99, 1.004, 0.985, 0.996, 1.001])
    d = np.log(ratios)
    mean, se = d.mean(), d.std(ddof=1) / np.sqrt(5)
    # Student's t with 4 degrees of freedom: 2.776445 two-sided 95 %, 2.131847 one-sided
    t = paired_t(ratios)
    assert t.ratio == pytest.approx(np.exp(mean))
    assert (t.lo, t.hi) == pytest.approx((np.exp(mean - 2.776445 * se),
                                          np.exp(mean + 2.776445 * se)), rel=1e-6)
    assert t.upper == pytest.approx(np.exp(mean + 2.131847 * se), rel=1e-6)
    assert t.passed and t.upper < 1.01 and t.seeds == 5
    # a variant 0.5 % worse on average but noisy: the bound crosses 1.01, the claim fails
    noisy = paired_t(np.array([0.98, 1.03, 1.0, 1.02, 0.995]))
    assert noisy.upper > 1.01 and not noisy.passed


def test_fewer_than_five_seeds_come_with_a_note():
    from pipelines.bench.parity import few_seeds_note

    assert few_seeds_note(5) is None and few_seeds_note(8) is None
    assert "not 95 % confidence intervals" in few_seeds_note(3)
    assert "min–max of 3 ratios" in few_seeds_note(3)


def test_a_variant_may_name_its_channel_stage():
    from dchag_cli.recipes import pretrain_mae, variant_flags

    assert variant_flags("L") == ["--variant", "L"]
    assert variant_flags("baseline-folded") == ["--variant", "baseline", "--channel-impl",
                                                "folded"]
    args = pretrain_mae("appl.zarr", "run", 4, 1, "baseline-folded")
    i = args.index("--variant")
    assert args[i:i + 4] == ["--variant", "baseline", "--channel-impl", "folded"]
    r = runner.invoke(app, ["pretrain", "--data", "x.zarr", *args[args.index("--preset"):],
                            "--dry-run", "--help"])
    assert r.exit_code == 0  # every flag the recipe passes exists
