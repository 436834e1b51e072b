"""Weather scores: hand-computed values on tiny arrays, and agreement with a plain loop
formulation on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.metrics.weather import latitude_weights, mse, rmse, wacc
from pipelines.model.forecast import latitude_weights as torch_latitude_weights

LAT = np.array([-60.0, 0.0, 60.0])  # cos: 0.5, 1, 0.5 → weights 0.75, 1.5, 0.75


def test_latitude_weights_by_hand():
    np.testing.assert_allclose(latitude_weights(LAT), [0.75, 1.5, 0.75])
    import torch

    np.testing.assert_allclose(torch_latitude_weights(torch.tensor(LAT)).numpy(),
                               [0.75, 1.5, 0.75], rtol=1e-6)


def test_rmse_and_mse_by_hand():
    o = np.zeros((2, 3, 2))
    f = np.zeros((2, 3, 2))
    f[0, 1, :] = 2.0  # time 0: error 2 on the equator row only → weighted MSE 1.5·4/3 = 2
    f[1, 0, 0] = 4.0  # time 1: error 4 at one cell of row −60 → 0.75·16/6 = 2
    assert mse(f, o, LAT) == pytest.approx(2.0)
    assert rmse(f, o, LAT) == pytest.approx(math.sqrt(2.0))
    f[1] = 0.0  # time 1 perfect: WB2 = sqrt(mean(2, 0)) = 1; ClimaX = mean(sqrt 2, 0)
    assert rmse(f, o, LAT) == pytest.approx(1.0)
    assert rmse(f, o, LAT, "climax") == pytest.approx(math.sqrt(2.0) / 2)


def test_wacc_by_hand():
    clim = np.zeros((1, 3, 2))
    o = np.array([[[1.0, -1.0], [2.0, -2.0], [1.0, -1.0]]])
    assert wacc(o, o, clim, LAT) == pytest.approx(1.0)
    assert wacc(-o, o, clim, LAT) == pytest.approx(-1.0)
    assert wacc(3 * o + 0.0, o, clim, LAT) == pytest.approx(1.0)  # scale-free
    assert math.isnan(wacc(clim, o, clim, LAT))  # the climatology itself: no anomaly


def _loop_scores(f, o, c, lat):
    """The same definitions written out element by element."""
    t_n, h, w = f.shape
    cosl = [math.cos(math.radians(v)) for v in lat]
    wts = [v / (sum(cosl) / h) for v in cosl]
    per_t, accs = [], []
    for t in range(t_n):
        se, num, sf, so = 0.0, 0.0, 0.0, 0.0
        for i in range(h):
            for j in range(w):
                se += wts[i] * (f[t, i, j] - o[t, i, j]) ** 2
                fa, oa = f[t, i, j] - c[t, i, j], o[t, i, j] - c[t, i, j]
                num += wts[i] * fa * oa
                sf += wts[i] * fa * fa
                so += wts[i] * oa * oa
        per_t.append(se / (h * w))
        accs.append(num / math.sqrt(sf * so))
    return sum(per_t) / t_n, math.sqrt(sum(per_t) / t_n), sum(accs) / t_n


def test_scores_agree_with_a_plain_loop_on_random_fields():
    rng = np.random.default_rng(0)
    lat = np.linspace(-87.1875, 87.1875, 8)
    o = rng.normal(size=(5, 8, 16))
    f = o + rng.normal(scale=0.5, size=o.shape)
    c = rng.normal(scale=0.3, size=o.shape)
    want_mse, want_rmse, want_acc = _loop_scores(f, o, c, lat)
    assert mse(f, o, lat) == pytest.approx(want_mse, rel=1e-12)
    assert rmse(f, o, lat) == pytest.approx(want_rmse, rel=1e-12)
    assert wacc(f, o, c, lat) == pytest.approx(want_acc, rel=1e-12)
