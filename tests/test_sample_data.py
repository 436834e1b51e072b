"""The committed samples are what they claim: CDS layouts, realistic magnitudes, small."""

from __future__ import annotations

import numpy as np
import xarray as xr

from tests.conftest import SAMPLE_ERA5


def test_shipped_era5_is_in_both_cds_layouts_and_small():
    files = sorted(SAMPLE_ERA5.glob("*.nc"))
    assert len(files) == 2
    assert sum(f.stat().st_size for f in files) < 4_000_000
    new = xr.open_dataset(SAMPLE_ERA5 / "era5_pressure_levels_2018-01-01.nc")
    assert {"valid_time", "pressure_level", "latitude", "longitude"} <= set(new.dims)
    assert new.latitude.values[0] == 90 and new.latitude.values[-1] == -90
    assert "expver" in new.coords and "number" in new.coords
    old = xr.open_dataset(SAMPLE_ERA5 / "era5_single_levels_2018-01-01.nc", mask_and_scale=False)
    assert "time" in old.dims and old["t2m"].dtype == np.int16


def test_shipped_era5_magnitudes_are_realistic():
    pl = xr.open_dataset(SAMPLE_ERA5 / "era5_pressure_levels_2018-01-01.nc")
    sl = xr.open_dataset(SAMPLE_ERA5 / "era5_single_levels_2018-01-01.nc")
    z500 = pl["z"].sel(pressure_level=500).values
    t850 = pl["t"].sel(pressure_level=850).values
    assert 5.0e4 < z500.mean() < 5.9e4
    assert t850.min() > 240 and t850.max() < 305
    assert 250 < float(sl["t2m"].mean()) < 295
    assert 9.5e4 < float(sl["msl"].mean()) < 1.05e5
    assert float(abs(pl["u"]).max()) < 80 and float(pl["q"].min()) >= 0


def test_waves_travel_east_so_persistence_is_beatable():
    z = xr.open_dataset(SAMPLE_ERA5 / "era5_pressure_levels_2018-01-01.nc")["z"].sel(
        pressure_level=500)
    band = z.sel(latitude=45).values  # (time, lon) at 45°N
    band = band - band.mean(axis=1, keepdims=True)
    day = 4  # 6-hourly steps
    lags = range(-10, 11)
    corr = [np.mean([np.corrcoef(np.roll(band[t], s), band[t + day])[0, 1]
                     for t in range(band.shape[0] - day)]) for s in lags]
    best = list(lags)[int(np.argmax(corr))]
    assert best > 0  # the field one day later is the field shifted east
    assert max(corr) > corr[10] + 0.05  # shifting beats persistence
