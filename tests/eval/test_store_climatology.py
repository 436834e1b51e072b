"""The training-period climatology is smoothed only where it is scored: the days within the
window of the valid times asked for, equal to smoothing the whole year."""

from __future__ import annotations

import numpy as np
import zarr

from pipelines.data.era5_stats import circular_smooth, day_of_year_index, hour_of_day
from pipelines.eval.climatology import EPOCH, StoreClimatology


def test_only_the_days_asked_for_are_smoothed_and_equal_the_whole_year(sample_era5_zarr):
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    times = np.asarray(g["time"][:], np.int64)
    channels = [0, 3]
    clim = StoreClimatology(g, channels, "store", exclude=times[-8:])  # held out: 2 days
    valid = times[-8:-4]  # one day, one time per hour slot
    fields, ok = clim.at(valid)
    assert ok.all()
    stamps = EPOCH + valid.astype("timedelta64[h]")
    window = int(g.attrs["clim_window_days"])
    for k, (day, hod) in enumerate(zip(day_of_year_index(stamps), hour_of_day(stamps),
                                       strict=True)):
        h = clim.hours.index(int(hod))
        assert list(clim._smoothed[h]) == [int(day)]  # that day alone, not all 366
        cs, cn = clim._corr[h]
        sums = g["clim_sum"].get_orthogonal_selection((slice(None), h, channels)) - cs
        counts = g["clim_count"].get_orthogonal_selection((slice(None), h, channels)) - cn
        with np.errstate(invalid="ignore", divide="ignore"):
            whole = circular_smooth(sums, window) / circular_smooth(counts, window)
        np.testing.assert_allclose(fields[k], whole[int(day)], rtol=1e-12)


def test_the_time_mean_climatology_is_the_mean_field_of_the_times_it_keeps(sample_era5_zarr):
    """WeatherBench 1's "Climatology": one mean field per channel over the climatology's
    times, the held-out ones removed — recomputed here from the fields themselves."""
    g = zarr.open_group(str(sample_era5_zarr), mode="r")
    times = np.asarray(g["time"][:], np.int64)
    channels = [0, 3]
    held_out = times[-8:]
    clim = StoreClimatology(g, channels, "store", exclude=held_out)
    kept = [i for i, t in enumerate(times) if t not in set(held_out.tolist())]
    want = np.mean([g["data"].get_orthogonal_selection((i, channels)).astype(np.float64)
                    for i in kept], axis=0)
    np.testing.assert_allclose(clim.time_mean(), want, rtol=1e-10)
    assert clim.time_mean() is clim.time_mean()  # computed once
    whole = StoreClimatology(g, channels, "store")
    np.testing.assert_allclose(whole.time_mean(), np.mean(
        [g["data"].get_orthogonal_selection((i, channels)).astype(np.float64)
         for i in range(len(times))],
        axis=0), rtol=1e-10)
