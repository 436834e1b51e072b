"""`dchag eval forecast`: held-out periods by default, outputs in physical units, scores
recomputed independently with WeatherBench 2's and ClimaX's definitions, no silently
dropped init, and the errors a user can act on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from pipelines.data.times import EPOCH
from tests.runner import app, one_error_line, runner

FAST = ["--workers", "0", "--batch-size", "4", "--log-every", "10", "--val-every", "20",
        "--ckpt-every", "20", "--steps", "20", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory, sample_era5_zarr) -> Path:
    run = tmp_path_factory.mktemp("fc") / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--lead", "6h,1d", *FAST])
    assert r.exit_code == 0, r.output
    return run


@pytest.fixture(scope="module")
def january(tmp_path_factory, forecast_run, sample_era5_zarr) -> Path:
    """Every init time of the sample (`--period 2018-01`: the whole month)."""
    out = tmp_path_factory.mktemp("ev") / "jan"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(sample_era5_zarr), "--period", "2018-01", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def _hours(values) -> np.ndarray:
    return ((np.asarray(values).astype("datetime64[h]") - EPOCH)
            // np.timedelta64(1, "h")).astype(np.int64)


def test_the_run_records_periods_and_eval_scores_its_test_period(tmp_path, forecast_run,
                                                                  sample_era5_zarr):
    periods = json.loads((forecast_run / "model.json").read_text())["periods"]
    val, test = (np.datetime64(periods[k][0], "h") for k in ("val", "test"))
    train_end, val_end = (np.datetime64(periods[k][1], "h") for k in ("train", "val"))
    assert periods["gap_hours"] == 24  # the longest trained lead
    assert val - train_end > np.timedelta64(24, "h") and test - val_end > np.timedelta64(24, "h")

    out = tmp_path / "default"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(sample_era5_zarr), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"the run's test period {periods['test'][0]}" in r.output
    scores = xr.open_zarr(out / "scores.zarr")
    assert "test period" in scores.attrs["period"]
    inits = xr.open_zarr(out / "predictions.zarr").init_time.values.astype("datetime64[h]")
    assert (inits >= test).all()
    # The 1-day lead cannot reach the data's end from the short test period: said, not hidden.
    assert "lead 1d" in r.output and "no truth that far ahead" in r.output
    assert int(scores.n_inits.sel(lead=24)) == 0 and int(scores.n_inits.sel(lead=6)) > 0


def test_predictions_and_scores_are_cf_and_physical(january, sample_era5_zarr):
    pred = xr.open_zarr(january / "predictions.zarr")
    assert pred.prediction.dims == ("init_time", "lead", "channel", "lat", "lon")
    assert pred.lead.values.tolist() == [6, 24]
    assert pred.channel.values.tolist() == ["z_500", "t_850", "t2m", "u10", "v10"]
    assert pred.channel_units.values.tolist() == ["m**2 s**-2", "K", "K", "m s**-1",
                                                  "m s**-1"]
    assert pred.lat.attrs["units"] == "degrees_north"
    z500 = pred.prediction.sel(lead=24, channel="z_500").values
    assert 40_000 < np.nanmean(z500) < 60_000  # geopotential in m²/s², not normalised
    scores = xr.open_zarr(january / "scores.zarr")
    assert scores.rmse.dims == ("forecaster", "lead", "channel", "region")
    assert scores.forecaster.values.tolist() == ["model", "persistence", "climatology",
                                                 "climatology_time_mean"]
    assert scores.region.values.tolist() == ["global", "tropics", "nh-extratropics",
                                             "sh-extratropics"]
    one = scores.rmse.sel(forecaster="persistence", channel="t_850", region="tropics",
                          lead=24)
    assert one.size == 1 and np.isfinite(one.item())
    assert scores.rmse.attrs["long_name"] == "latitude-weighted RMSE"
    for png in ("map_z_500.png", "scores_vs_lead.png"):
        assert (january / png).read_bytes()[:4] == b"\x89PNG"


def _training_climatology(g: zarr.Group, train_end: np.datetime64, valid: np.ndarray,
                          c: int) -> np.ndarray:
    """WB2's climatology of the valid times from the training times alone, written out:
    same hour of day, triangular weights 1 − |Δday|/30 over a 61-day window."""
    times = g["time"][:].astype("datetime64[h]") if g["time"].dtype.kind == "M" else \
        EPOCH + g["time"][:].astype("timedelta64[h]")
    out = []
    for v in EPOCH + valid.astype("timedelta64[h]"):
        num, den = 0.0, 0.0
        for i, t in enumerate(times):
            if t > train_end or (t - v) % np.timedelta64(24, "h") != np.timedelta64(0, "h"):
                continue
            dday = abs(int((t.astype("datetime64[D]") - v.astype("datetime64[D]"))
                           / np.timedelta64(1, "D")))
            w = max(0.0, 1 - dday / 30)
            num = num + w * g["data"][i, c].astype(np.float64)
            den += w
        out.append(num / den)
    return np.stack(out)


def _cell_weights(lat: np.ndarray) -> np.ndarray:
    """WeatherBench 2's cell-area latitude weights (sin of the cell edges)."""
    rad = np.deg2rad(lat)
    edges = np.concatenate([[-np.pi / 2], (rad[:-1] + rad[1:]) / 2, [np.pi / 2]])
    w = np.sin(edges[1:]) - np.sin(edges[:-1])
    return w / w.mean()


@pytest.mark.parametrize("region,bounds", [("global", (-90, 90)), ("tropics", (-20, 20))])
def test_scores_match_an_independent_weatherbench2_recomputation(
        january, forecast_run, sample_era5_zarr, region, bounds):
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    names = list(g.attrs["channels"])
    pred = xr.open_zarr(january / "predictions.zarr")
    scores = xr.open_zarr(january / "scores.zarr")
    periods = json.loads((forecast_run / "model.json").read_text())["periods"]
    train_end = np.datetime64(periods["train"][1], "h")
    times = _hours(xr.open_zarr(sample_era5_zarr).time.values)
    lat = g["lat"][:]
    w = xr.DataArray(_cell_weights(lat), dims="lat")
    inside = (lat >= bounds[0]) & (lat <= bounds[1])
    for channel in ("z_500", "t2m"):
        c = names.index(channel)
        f = pred.prediction.sel(lead=24, channel=channel)
        f = f.dropna("init_time", how="all")
        inits = _hours(f.init_time.values)
        valid = inits + 24
        rows = [int(np.flatnonzero(times == v)[0]) for v in valid]
        truth = xr.DataArray(np.stack([g["data"][j, c] for j in rows]).astype(np.float64),
                             dims=("init_time", "lat", "lon"))
        fc = xr.DataArray(f.values.astype(np.float64), dims=("init_time", "lat", "lon"))
        clim = xr.DataArray(_training_climatology(g, train_end, valid, c),
                            dims=("init_time", "lat", "lon"))
        sel = {"lat": np.flatnonzero(inside)}
        fc, truth, clim, ww = fc.isel(sel), truth.isel(sel), clim.isel(sel), w.isel(sel)
        mse_t = ((fc - truth) ** 2).weighted(ww).mean(("lat", "lon"))
        fa, oa = fc - clim, truth - clim
        acc_t = (fa * oa).weighted(ww).mean(("lat", "lon")) / np.sqrt(
            (fa**2).weighted(ww).mean(("lat", "lon")) * (oa**2).weighted(ww).mean(("lat", "lon")))
        at = {"forecaster": "model", "lead": 24, "channel": channel, "region": region}
        assert scores.rmse.sel(at).item() == pytest.approx(float(np.sqrt(mse_t.mean())),
                                                           rel=1e-6)
        assert scores.mse.sel(at).item() == pytest.approx(float(mse_t.mean()), rel=1e-6)
        assert scores.wacc.sel(at).item() == pytest.approx(float(acc_t.mean()), abs=1e-6)
        assert int(scores.n_inits.sel(lead=24)) == len(inits)
        # WeatherBench 1's time-mean climatology: the mean field of the training times
        kept = [i for i, t in enumerate(times) if t <= _hours(np.array([train_end]))[0]]
        flat = xr.DataArray(np.mean([g["data"][i, c].astype(np.float64) for i in kept],
                                    axis=0), dims=("lat", "lon")).isel(sel)
        mse_flat = ((flat - truth) ** 2).weighted(ww).mean(("lat", "lon"))
        at["forecaster"] = "climatology_time_mean"
        assert scores.rmse.sel(at).item() == pytest.approx(float(np.sqrt(mse_flat.mean())),
                                                           rel=1e-6)


def _climax_rmse(pred: torch.Tensor, y: torch.Tensor, lat: np.ndarray) -> torch.Tensor:
    """ClimaX's `lat_weighted_rmse` for one variable of a batch (B, H, W)."""
    w = np.cos(np.deg2rad(lat))
    w = torch.from_numpy(w / w.mean())[None, :, None]
    return torch.mean(torch.sqrt(torch.mean((pred - y) ** 2 * w, dim=(-2, -1))))


def _climax_acc(pred: torch.Tensor, y: torch.Tensor, clim: torch.Tensor,
                lat: np.ndarray) -> torch.Tensor:
    """ClimaX's `lat_weighted_acc` for one variable of a batch (B, H, W)."""
    w = np.cos(np.deg2rad(lat))
    w = torch.from_numpy(w / w.mean())[None, :, None]
    pred, y = pred - clim[None], y - clim[None]
    p, q = pred - torch.mean(pred), y - torch.mean(y)
    return torch.sum(w * p * q) / torch.sqrt(torch.sum(w * p**2) * torch.sum(w * q**2))


def test_the_climax_convention_reproduces_climax_batched_test_scores(
        tmp_path, forecast_run, sample_era5_zarr):
    out = tmp_path / "cx"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(sample_era5_zarr), "--lead", "6h", "--period", "2018-01",
                            "--convention", "climax", "--climax-batch", "5", "--out",
                            str(out)])
    assert r.exit_code == 0, r.output
    assert "climax convention" in r.output
    scores = xr.open_zarr(out / "scores.zarr")
    assert scores.attrs["convention"] == "climax"
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    names = list(g.attrs["channels"])
    times = _hours(xr.open_zarr(sample_era5_zarr).time.values)
    pred = xr.open_zarr(out / "predictions.zarr").prediction.sel(lead=6)
    inits = _hours(pred.init_time.values)
    lat = g["lat"][:]
    for channel in ("z_500", "u10"):
        c = names.index(channel)
        # ClimaX's climatology: the mean field over the whole test period
        clim = torch.from_numpy(np.mean([g["data"][j, c] for j in range(len(times))],
                                        axis=0, dtype=np.float64))
        f = torch.from_numpy(pred.sel(channel=channel).values.astype(np.float64))
        y = torch.from_numpy(np.stack([g["data"][int(np.flatnonzero(times == t + 6)[0]), c]
                                       for t in inits]).astype(np.float64))
        # Lightning's epoch value: batch results averaged, weighted by batch size
        accs, rmses, sizes = [], [], []
        for s in range(0, len(inits), 5):
            accs.append(float(_climax_acc(f[s:s + 5], y[s:s + 5], clim, lat)))
            rmses.append(float(_climax_rmse(f[s:s + 5], y[s:s + 5], lat)))
            sizes.append(len(f[s:s + 5]))
        at = {"forecaster": "model", "lead": 6, "channel": channel, "region": "global"}
        assert scores.wacc.sel(at).item() == pytest.approx(np.average(accs, weights=sizes),
                                                           abs=1e-6)
        assert scores.rmse.sel(at).item() == pytest.approx(np.average(rmses, weights=sizes),
                                                           rel=1e-6)


def _wb2_climatology(sample_era5_zarr: Path, path: Path, hours: list[int]) -> Path:
    """The store's climatology rewritten in WeatherBench 2's layout (north → south rows,
    long variable names, a `level` dimension), holding only the given hours of day."""
    ds = xr.open_zarr(sample_era5_zarr)
    clim = ds.climatology.sel(hour=hours)
    clim = clim.drop_vars("channel_units")
    geo = clim.sel(channel="z_500").drop_vars("channel").expand_dims(level=[500])
    out = xr.Dataset({"geopotential": geo,
                      "2m_temperature": clim.sel(channel="t2m").drop_vars("channel")})
    out = out.rename(lat="latitude", lon="longitude").isel(latitude=slice(None, None, -1))
    out.transpose("hour", "dayofyear", "level", "latitude", "longitude").drop_encoding(
    ).to_zarr(path, zarr_format=2)
    return path


def test_inits_without_climatology_are_left_out_of_every_score_and_listed(
        tmp_path, sample_era5_zarr):
    run = tmp_path / "two"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--channels", "z_500,t2m,t_850", "--out-channels",
                            "z_500,t2m", "--lead", "6h", *FAST])
    assert r.exit_code == 0, r.output
    clim = _wb2_climatology(sample_era5_zarr, tmp_path / "clim.zarr", [0, 6, 12])
    out = tmp_path / "ev"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--period", "2018-01", "--climatology",
                            str(clim), "--out", str(out)])
    assert r.exit_code == 0, r.output
    scores = xr.open_zarr(out / "scores.zarr")
    left = scores.attrs["left_out"]["6h"]
    assert left and all(t.endswith("T12") for t, _ in left)  # valid at 18 UTC: no hour 18
    assert all("no climatology for valid time" in why for _, why in left)
    n = int(scores.n_inits.sel(lead=6))
    assert n + len(left) == 31  # 32 times, the last has no truth 6 h ahead
    assert "left out of every score" in r.output
    assert "WeatherBench 2 file clim.zarr" in scores.attrs["climatology"]
    # Every forecaster is scored on the same inits: persistence recomputed on them.
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    c = list(g.attrs["channels"]).index("t2m")
    times = _hours(xr.open_zarr(sample_era5_zarr).time.values)
    w = np.cos(np.deg2rad(g["lat"][:]))
    w = w / w.mean()
    per_init = [(w[:, None] * (g["data"][i, c].astype(float) - g["data"][i + 1, c]) ** 2
                 ).mean() for i in range(len(times) - 1) if (times[i] + 6) % 24 != 18]
    assert len(per_init) == n
    got = scores.rmse.sel(forecaster="persistence", lead=6, channel="t2m",
                          region="global").item()
    assert got == pytest.approx(np.sqrt(np.mean(per_init)), rel=1e-9)


def test_weatherbench2_export_round_trips_and_scores_like_the_run(tmp_path, january,
                                                                 sample_era5_zarr):
    wb2 = tmp_path / "dchag_wb2.zarr"
    r_first = runner.invoke(app, ["export", "weatherbench2",
                                  str(january / "predictions.zarr"), "--out", str(wb2)])
    assert r_first.exit_code == 0, r_first.output
    ds = xr.open_zarr(wb2)
    assert set(ds.data_vars) == {"geopotential", "temperature", "2m_temperature",
                                 "10m_u_component_of_wind", "10m_v_component_of_wind"}
    assert ds.geopotential.dims == ("time", "prediction_timedelta", "level", "latitude",
                                    "longitude")
    assert ds.geopotential.attrs["units"] == "m**2 s**-2"
    assert ds.geopotential.attrs["standard_name"] == "geopotential"
    assert ds["2m_temperature"].attrs["long_name"] == "2m temperature"
    assert ds.prediction_timedelta.values.astype("timedelta64[h]").astype(int).tolist() == \
        [6, 24]
    pred = xr.open_zarr(january / "predictions.zarr")
    np.testing.assert_array_equal(ds.geopotential.sel(level=500).values,
                                  pred.prediction.sel(channel="z_500").values)
    r = runner.invoke(app, ["export", "weatherbench2", str(january / "predictions.zarr"),
                            "--out", str(wb2)])
    assert r.exit_code == 1 and "--overwrite" in one_error_line(r.output)

    # WeatherBench 2 writes its results as netCDF: every attribute must be one netCDF holds
    ds.to_netcdf(tmp_path / "as_wb2_writes_it.nc")
    assert json.loads(ds.attrs["provenance"])["stage"] == "export weatherbench2"
    # the sample run predicts z at 500 hPa only: the shared level dimension's other plane
    # is NaN, and the export says so
    assert "geopotential at 850 hPa" in ds.attrs["levels_without_data"]
    assert "geopotential at 850 hPa" in r_first.output

    # The exported forecast, scored as another model's, gives the run's own scores —
    # climatology and ACC included: the file names its run, whose training period rules.
    out = tmp_path / "other"
    r = runner.invoke(app, ["eval", "forecast", "--forecast", str(wb2), "--data",
                            str(sample_era5_zarr), "--period", "2018-01", "--out", str(out)])
    assert r.exit_code == 0, r.output
    mine = xr.open_zarr(january / "scores.zarr")
    theirs = xr.open_zarr(out / "scores.zarr")
    for metric in ("rmse", "mse", "wacc"):
        np.testing.assert_allclose(theirs[metric].values, mine[metric].values, rtol=1e-6)
    assert theirs.attrs["climatology"] == mine.attrs["climatology"]
    assert "training period" in theirs.attrs["climatology"]
    assert theirs.n_inits.values.tolist() == mine.n_inits.values.tolist()
    # January is mostly the run's training period: both paths say so
    assert any("training period" in n for n in theirs.attrs["notes"])
    assert any("training period" in n for n in mine.attrs["notes"])


def test_an_old_store_with_a_daily_climatology_is_read_with_a_note(tmp_path, forecast_run,
                                                                   sample_era5_zarr):
    import shutil

    old = tmp_path / "old.zarr"
    shutil.copytree(sample_era5_zarr, old)
    g = zarr.open_group(str(old), mode="r+")
    daily = g["climatology"][:, 0]  # the 00 UTC fields as a day-of-year climatology
    for name in ("climatology", "clim_sum", "clim_count", "hour"):
        del g[name]
    a = g.create_array("climatology", data=daily.astype(np.float32))
    a.attrs["_ARRAY_DIMENSIONS"] = ["dayofyear", "channel", "lat", "lon"]
    zarr.consolidate_metadata(str(old))
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(old), "--lead", "6h", "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "per day of year only" in r.output
    assert "no hour of day" in xr.open_zarr(tmp_path / "ev" / "scores.zarr"
                                            ).attrs["climatology"]


def test_unreachable_leads_empty_periods_and_other_data_are_refused(
        tmp_path, forecast_run, sample_era5_zarr):
    base = ["eval", "forecast", "--run", str(forecast_run), "--data", str(sample_era5_zarr),
            "--out", str(tmp_path / "x")]
    r = runner.invoke(app, [*base, "--lead", "2d"])
    assert r.exit_code == 1 and "was not trained" in r.output and "--rollout" in r.output
    r = runner.invoke(app, [*base, "--lead", "2d", "--rollout"])
    assert r.exit_code == 1 and "predicts 5 of its 14 input channels" in r.output
    r = runner.invoke(app, [*base, "--period", "1990"])
    assert r.exit_code == 1 and "no init time of the data falls in --period 1990" in r.output
    r = runner.invoke(app, [*base, "--period", "20x8"])
    assert r.exit_code == 1 and "--period" in one_error_line(r.output)
    r = runner.invoke(app, [*base, "--period", "2018-01-08T18", "--lead", "1d"])
    assert r.exit_code == 1 and "nothing to score" in one_error_line(r.output)
    r = runner.invoke(app, ["eval", "forecast", "--data", str(sample_era5_zarr)])
    assert r.exit_code == 1 and "--run RUN or --forecast FILE" in one_error_line(r.output)
    assert not (tmp_path / "x" / "predictions.zarr").exists()

    other = tmp_path / "other.zarr"
    from tests.conftest import REPO

    r = runner.invoke(app, ["prep", "era5", str(REPO / "sample_data" / "era5"), "--channels",
                            "z_500,t_850,t2m", "--out", str(other)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(other)])
    assert r.exit_code == 1 and "channels are not all in the data" in r.output
    coarse = tmp_path / "coarse.zarr"
    r = runner.invoke(app, ["prep", "era5", str(REPO / "sample_data" / "era5"), "--preset",
                            "sample-14", "--resolution", "11.25", "--out", str(coarse)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(coarse)])
    assert r.exit_code == 1 and "differs from the run's" in r.output


def test_rollout_reaches_longer_leads_with_a_full_state_model(tmp_path, sample_era5_zarr):
    run = tmp_path / "full"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--channels", "z_500,t_850", "--out-channels",
                            "all", "--lead", "6h", *FAST])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--lead", "6h,1d", "--rollout",
                            "--period", "2018-01"])
    assert r.exit_code == 0, r.output
    assert "rolled out in 4 steps of 6h" in r.output
    scores = xr.open_zarr(run / "eval" / "scores.zarr")
    assert scores.attrs["rollout_leads"] == [24]
    assert np.isfinite(scores.rmse.sel(forecaster="model").values).all()


def test_the_library_call_scores_a_run_and_stages_every_output(tmp_path, forecast_run,
                                                               sample_era5_zarr):
    """The evaluation is one library call (`jobs.forecast_eval`): what the command prints
    is computed and written there, so it is tested without the CLI."""
    from pipelines.errors import DchagError
    from pipelines.jobs.forecast_eval import ForecastJob, default_out, run_forecast_job

    job = ForecastJob(sample_era5_zarr, run=forecast_run, leads=[6], period="2018-01",
                      out_dir=tmp_path / "lib")
    done = run_forecast_job(job, torch.device("cpu"))
    assert done.out_dir == tmp_path / "lib"
    assert {"predictions.zarr", "scores.zarr", "scores_vs_lead.png"} <= set(done.written)
    assert all((done.out_dir / name).exists() for name in done.written)
    scores = xr.open_zarr(done.out_dir / "scores.zarr")
    rmse = scores.rmse.sel(region="global", lead=6)
    np.testing.assert_allclose(rmse.values, done.res.scores["rmse"][:, 0, :, 0], rtol=1e-6)
    assert done.res.leads == [6] and done.robust is None
    # results go inside a run folder and beside a file, never into a folder at a file
    assert default_out(forecast_run) == forecast_run / "eval"
    model_file = tmp_path / "fc.safetensors"
    model_file.write_bytes(b"")
    assert default_out(model_file) == tmp_path / "fc_eval"
    with pytest.raises(DchagError, match="either a run or a forecast file"):
        ForecastJob(sample_era5_zarr).check()


def test_shuffling_the_stores_channels_changes_no_score(tmp_path, forecast_run, january,
                                                         sample_era5_zarr):
    """Channels are found by what they measure (variable × level), not by position."""
    from tests.store_edit import permuted_copy

    n = len(zarr.open_group(str(sample_era5_zarr), mode="r").attrs["channels"])
    perm = np.random.default_rng(5).permutation(n)
    shuffled = permuted_copy(sample_era5_zarr, tmp_path / "shuffled.zarr", "channel", perm,
                             ("channels",))
    out = tmp_path / "ev"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(forecast_run), "--data",
                            str(shuffled), "--period", "2018-01", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "another order: matched by name" in r.output
    a, b = (xr.open_zarr(p / "scores.zarr") for p in (january, out))
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name
