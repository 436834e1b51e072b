"""Bands known by centre and width: the spectral response that maps a model's bands onto
another instrument's reproduces prep's own resampling, and the lift back is exact for
spectra the prior spans."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from pipelines.data.sensor_bands import band_widths, response, sensor_map, store_bands
from pipelines.errors import DchagError
from pipelines.run.channel_match import match_channels
from tests.runner import app, runner

FINE = np.linspace(400, 900, 500)


def test_response_rows_are_weighted_means_centred_on_each_band():
    data_nm = np.array([500.0, 650.0, 800.0])
    s = response(FINE, band_widths(FINE), data_nm, np.full(3, 10.0))
    assert np.allclose(s.sum(axis=1), 1.0)
    assert np.allclose(s @ FINE, data_nm, atol=0.05)  # the response's centroid
    linear = 0.2 + 1e-3 * (FINE - 400)
    assert np.allclose(s @ linear, 0.2 + 1e-3 * (data_nm - 400), atol=1e-5)


def test_the_lift_is_exact_for_spectra_the_prior_spans_and_bands_outside_are_left_out():
    rng = np.random.default_rng(0)
    mean = 0.3 + 0.2 * np.tanh((FINE - 700) / 20)
    comps = np.stack([np.sin((FINE - 400) / 80), np.cos((FINE - 400) / 150)]) * 0.05
    data_nm = np.concatenate([np.linspace(420, 880, 30), [950.0, 1000.0]])
    m = sensor_map(FINE, band_widths(FINE), data_nm, np.full(data_nm.size, 12.0),
                   (mean, comps))
    assert m.method == "spectral prior" and list(m.uncovered) == [30, 31]
    assert m.data_index.size == 30 and m.outside > 0  # 400–420 and 880–900 nm: estimated
    x = mean + rng.normal(size=(5, 2)) @ comps
    lifted = m.to_model(m.to_data(x))
    assert np.abs(lifted - x).max() < 1e-6  # the ridge alone
    plain = sensor_map(FINE, band_widths(FINE), data_nm[:30], np.full(30, 12.0), None)
    assert plain.method == "interpolation"
    with pytest.raises(DchagError, match="no band of the data"):
        sensor_map(FINE, band_widths(FINE), np.array([1000.0, 1100.0]), np.ones(2), None)


def test_projecting_the_500_band_store_gives_preps_own_100_band_store(tmp_path,
                                                                       sample_appl_zarr):
    from tests.conftest import REPO

    other = tmp_path / "b100.zarr"
    r = runner.invoke(app, ["prep", "appl", str(REPO / "sample_data" / "appl" / "manifest.csv"),
                            "--size", "16", "--bands", "100", "--range", "405:895",
                            "--out", str(other)])
    assert r.exit_code == 0, r.output
    fine, coarse = (zarr.open_group(str(p), mode="r") for p in (sample_appl_zarr, other))
    (nm, fw), (dnm, dfw) = store_bands(fine), store_bands(coarse)
    assert np.allclose(dfw, 4.9494949, atol=1e-4)  # recorded: the resampling's spacing
    m = sensor_map(nm, fw, dnm, dfw, None)
    x = np.moveaxis(fine["cube"][:], 1, -1)
    y = np.moveaxis(coarse["cube"][:], 1, -1)
    err = np.sqrt(np.mean((m.to_data(x) - y[..., m.data_index]) ** 2))
    assert err < 0.01 * np.sqrt(np.mean(y**2))  # the same bands, within 1 % of the signal


def test_channels_are_matched_by_name_whatever_their_order():
    m = match_channels(["z_500", "t_850", "t2m"], ["t2m", "msl", "z_500", "t_850"])
    assert m.index == [2, 3, 0] and m.reordered and m.new == ["msl"] and not m.missing
    notes = " ".join(m.notes())
    assert "another order" in notes and "msl" in notes
    same = match_channels(["a", "b"], ["a", "b", "c"])
    assert not same.reordered and same.index == [0, 1]
    assert match_channels(["a", "x"], ["a"]).missing == ["x"]
