"""The scorecard: the run's global RMSE beside published scores that each name a source,
and every protocol difference said on the table, the CSV and the figure."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pipelines.data.times import EPOCH
from pipelines.errors import DchagError
from pipelines.eval.scorecard import (
    REFERENCES,
    RunProtocol,
    build,
    load_references,
    protocol_differences,
)
from tests.runner import app, runner


def _hours(text: str) -> int:
    return int((np.datetime64(text, "h") - EPOCH) // np.timedelta64(1, "h"))


def test_every_shipped_reference_names_its_source_and_protocol():
    refs = load_references()
    assert {r.model for r in refs} >= {"Persistence", "Climatology", "IFS T42", "IFS T63",
                                       "Weyn et al. U-Net", "Rasp & Thuerey ResNet"}
    assert all(r.source and r.test_period == "2017-2018" for r in refs)
    z3 = {r.model: r.value for r in refs if (r.channel, r.lead_h) == ("z_500", 72)}
    assert z3["Persistence"] == 936 and z3["IFS T42"] == 489  # WeatherBench leaderboard


def test_rows_put_the_run_and_its_own_baselines_beside_the_references():
    leads, channels = [6, 72], ["t_850", "z_500"]
    rmse = np.zeros((4, 2, 2, 4))
    rmse[:, 1, 1, 0] = [300.0, 900.0, 1000.0, 1100.0]  # model, persistence, 2 climatologies
    inits = np.array([_hours("2017-01-01T00"), _hours("2018-12-31T18")])
    lat = np.linspace(-87.1875, 87.1875, 32)
    rows, unmatched = build({"rmse": rmse}, leads, channels, inits, lat, False,
                            load_references())
    z = [r for r in rows if r.channel == "z_500"]
    assert [(r.model, r.value) for r in z[:4]] == [
        ("this run", 300.0), ("persistence (this run's period)", 900.0),
        ("climatology (this run's period)", 1000.0),
        ("climatology_time_mean (this run's period)", 1100.0)]
    assert [r.protocol["climatology"] for r in z[:4]] == ["", "", "day of year × hour",
                                                          "time mean"]
    # 2017-2018 on the 5.625° grid, real data, bilinear: only the climatologies differ
    differing = {r.model for r in rows if r.differs}
    assert differing == {"Climatology", "Weekly climatology"}
    wb1 = next(r for r in z if r.model == "Climatology")
    assert "time mean climatology, not the run's day of year × hour" in wb1.differs
    assert "like for like: this run's climatology_time_mean" in wb1.differs
    assert wb1.protocol["climatology"] == "time mean" and "xESMF" in wb1.protocol["regrid"]
    assert "z_500 at 120 h" in unmatched and "t_850 at 120 h" in unmatched


def test_protocol_differences_are_named():
    ref = load_references()[0]
    assert protocol_differences(ref, RunProtocol((2017, 2018), 5.625, False)) == ""
    said = protocol_differences(ref, RunProtocol((2018, 2019), 2.8125, True, "conservative"))
    assert "synthetic" in said and "test years 2018–2019" in said and "2.8125°" in said
    assert "regridded conservative (reference: bilinear" in said


def test_a_reference_without_a_source_is_refused(tmp_path):
    bad = tmp_path / "refs.csv"
    header = REFERENCES.read_text().splitlines()
    header = next(ln for ln in header if ln.startswith("model,"))
    bad.write_text(f"{header}\nClimaX,z_500,72,rmse,250,ViT,2017-2018,\n")
    with pytest.raises(DchagError, match="names no source"):
        load_references(bad)


@pytest.mark.parametrize(("metric", "value"), [("rmse", "nan"), ("rmse", "-3"),
                                               ("rmse", "inf"), ("acc", "1.5")])
def test_a_reference_score_that_cannot_be_is_refused(tmp_path, metric, value):
    bad = tmp_path / "refs.csv"
    header = next(ln for ln in REFERENCES.read_text().splitlines() if ln.startswith("model,"))
    bad.write_text(f"{header}\nClimaX,z_500,72,{metric},{value},ViT,2017-2018,Nguyen 2023\n")
    with pytest.raises(DchagError, match=rf"row 2 \(ClimaX, z_500 at 72 h\) gives {metric} "
                       rf"{value}, not a possible score") as err:
        load_references(bad)
    assert "refs.csv" in str(err.value)


def test_eval_forecast_writes_the_scorecard_and_says_the_data_is_synthetic(
        tmp_path, sample_era5_zarr):
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--out",
                            str(run), "--lead", "6h", "--steps", "2", "--workers", "0",
                            "--batch-size", "2"])
    assert r.exit_code == 0, r.output
    refs = tmp_path / "refs.csv"
    refs.write_text("model,channel,lead_h,metric,value,model_grid,test_period,source\n"
                    "Someone's model,z_500,6,rmse,100,ViT,2017-2018,A paper (Table 1)\n")
    out = tmp_path / "eval"
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--references", str(refs), "--out",
                            str(out)])
    assert r.exit_code == 0, r.output
    assert "scorecard z_500 at 6h" in r.output
    assert "protocol differs: the run's data is synthetic, not ERA5" in r.output
    with (out / "scorecard.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    mine = next(row for row in rows if row["model"] == "Someone's model")
    assert mine["same_protocol"] == "no" and "synthetic" in mine["protocol_differs"]
    assert mine["source"] == "A paper (Table 1)"
    run_row = next(row for row in rows if row["model"] == "this run")
    assert np.isfinite(float(run_row["value"]))
    assert (out / "scorecard.png").read_bytes()[:4] == b"\x89PNG"
