"""Held-out periods of weather runs, `--period` spans, and normalisation from the
training period alone."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.data.times import EPOCH, in_period, period_hours
from pipelines.errors import DchagError
from pipelines.run.config import TrainConfig
from pipelines.run.periods import Periods, make_periods, named_periods
from pipelines.train.data import describe_artifact, split_samples


def hours(text: str) -> int:
    return int((np.datetime64(text, "h") - EPOCH) // np.timedelta64(1, "h"))


@pytest.mark.parametrize("text,first,end", [
    ("2018", "2018-01-01T00", "2019-01-01T00"),
    ("2018-12", "2018-12-01T00", "2019-01-01T00"),  # the whole month, not 1 December
    ("2018-02", "2018-02-01T00", "2018-03-01T00"),
    ("2018-12-24", "2018-12-24T00", "2018-12-25T00"),
    ("2018-12-24T18", "2018-12-24T18", "2018-12-24T19"),
    ("2018-01:2018-03", "2018-01-01T00", "2018-04-01T00"),  # to the end of March
    ("2017:2018", "2017-01-01T00", "2019-01-01T00"),
    ("2018-01-07T18:2018-01-08T12", "2018-01-07T18", "2018-01-08T13"),
])
def test_period_forms_mean_the_whole_span(text, first, end):
    assert period_hours(text) == (hours(first), hours(end))


def test_period_selects_six_hourly_inits_by_hour():
    t = np.array([hours("2018-01-07T12") + 6 * k for k in range(6)])
    got = t[in_period("2018-01-07T18:2018-01-08T12", t)]
    assert [str(EPOCH + np.timedelta64(int(h), "h")) for h in got] == [
        "2018-01-07T18", "2018-01-08T00", "2018-01-08T06", "2018-01-08T12"]


@pytest.mark.parametrize("text", ["20x8", "2018-13", "2018-02-30", "2018:2017", "2018-1"])
def test_bad_periods_are_refused(text):
    with pytest.raises(DchagError, match="--period"):
        period_hours(text)


def test_periods_are_ordered_and_separated_by_the_gap():
    t = np.arange(0, 1000 * 6, 6)  # 1000 six-hourly steps
    p = make_periods(t, 0.1, 0.1, gap_hours=168)
    assert p.train[0] == 0 and p.test[1] == t[-1]
    assert p.val[0] - p.train[1] > 168 and p.test[0] - p.val[1] > 168
    assert Periods.from_dict(p.to_dict()) == p
    with pytest.raises(DchagError, match="too short"):
        make_periods(np.arange(0, 60, 6), 0.1, 0.1, gap_hours=168)


def test_named_periods_keep_held_out_bounds_and_trim_training_by_the_gap():
    t = np.arange(hours("2015-01-01T00"), hours("2019-01-01T00"), 6)
    p, notes = named_periods(t, "2015", "2016", "2017:2018", gap_hours=168)
    assert p.test == (hours("2017-01-01T00"), hours("2018-12-31T18"))
    # each earlier period ends 168 h + one step before the next begins
    assert p.val == (hours("2016-01-01T00"), hours("2016-12-24T18"))
    assert p.train == (hours("2015-01-01T00"), hours("2015-12-24T18"))
    assert [n[:36] for n in notes] == ["train period ends at 2015-12-24T18, ",
                                       "val period ends at 2016-12-24T18, 16"]


@pytest.mark.parametrize(("train", "val", "test", "message"), [
    ("2016", "2015", None, "must end before --val-period"),
    ("2014", "2016", None, "the data has no time in it"),
    ("2015-12-31", "2016", None, "shorter than the 168 h gap"),
])
def test_named_periods_out_of_order_or_outside_the_data_are_refused(train, val, test,
                                                                    message):
    t = np.arange(hours("2015-01-01T00"), hours("2017-01-01T00"), 6)
    with pytest.raises(DchagError, match=message):
        named_periods(t, train, val, test, gap_hours=168)


def test_val_or_test_period_without_a_training_period_is_refused():
    with pytest.raises(DchagError, match="need --train-period"):
        TrainConfig(task="forecast", data="x", val_period="2016")


def test_samples_of_each_split_stay_inside_their_period(sample_era5_zarr):
    cfg = TrainConfig(task="forecast", data=str(sample_era5_zarr), leads=[6, 24],
                      val_fraction=0.15, test_fraction=0.15)
    art = describe_artifact(sample_era5_zarr, cfg)
    import zarr

    times = zarr.open_group(str(sample_era5_zarr), mode="r")["time"][:].astype(np.int64)
    used = {}
    for split in ("train", "val", "test"):
        starts, reach = split_samples(art, cfg, split)
        rows = set(starts) | {j for pairs in reach.values() for _, j in pairs}
        assert rows and all(art.periods.contains(split, times[list(rows)]))
        used[split] = rows
    assert not used["train"] & used["val"] and not used["val"] & used["test"]
    # a held-out input is more than the longest lead after every training target
    assert min(times[list(used["val"])]) - max(times[list(used["train"])]) > 24


def test_normalisation_comes_from_the_training_period_only(sample_era5_zarr):
    import zarr

    cfg = TrainConfig(task="forecast", data=str(sample_era5_zarr), leads=[6],
                      channels=["t2m"], val_fraction=0.2, test_fraction=0.2)
    art = describe_artifact(sample_era5_zarr, cfg)
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    c = list(g.attrs["channels"]).index("t2m")
    keep = art.periods.contains("train", g["time"][:].astype(np.int64))
    x = g["data"][np.flatnonzero(keep), c].astype(np.float64)
    assert art.mean[0] == pytest.approx(x.mean(), rel=1e-9)
    assert art.std[0] == pytest.approx(x.std(), rel=1e-6)
    everything = g["data"][:, c].astype(np.float64)
    assert art.mean[0] != pytest.approx(everything.mean(), rel=1e-7)  # not all times


def test_a_malformed_named_period_names_its_own_flag():
    with pytest.raises(DchagError, match=r"^--train-period '2018-13': 2018-13 is not a date"):
        TrainConfig(task="forecast", data="x", train_period="2018-13")
