"""Regression metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error

from mtlrec.metrics import regression


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(size=500)  # skewed, like prices or dwell times
    p = y + rng.normal(scale=0.5, size=500)
    mse = mean_squared_error(y, p)
    assert regression.mse(y, p) == pytest.approx(mse, rel=1e-12)
    assert regression.rmse(y, p) == pytest.approx(math.sqrt(mse), rel=1e-12)
    assert regression.mae(y, p) == pytest.approx(mean_absolute_error(y, p), rel=1e-12)


def test_known_answers():
    y = np.array([1.0, 2.0, 3.0])
    assert regression.mse(y, y) == 0.0
    assert regression.mse(y, y + 2) == 4.0
    assert regression.rmse(y, y + 2) == 2.0
    assert regression.mae(y, np.array([0.0, 2.0, 5.0])) == 1.0


def test_column_predictions_and_python_floats():
    y = np.array([1.0, 2.0])
    p = np.array([[1.5], [2.5]])
    for fn in (regression.mse, regression.rmse, regression.mae):
        assert type(fn(y, p)) is float
    assert regression.mae(y, p) == 0.5


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        regression.mse(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("fn", [regression.mse, regression.rmse, regression.mae])
def test_empty_input_is_nan(fn):
    assert math.isnan(fn(np.array([]), np.array([])))


def naive_poisson_deviance(y, p) -> float:
    """The mean unit deviance, one row at a time: 2 (y log(y / p) - y + p), 0 log 0 = 0."""
    total = 0.0
    for a, b in zip(y.tolist(), p.tolist()):
        if a > 0 and b == 0:
            return math.inf
        total += 2.0 * ((a * math.log(a / b) if a > 0 else 0.0) - a + b)
    return total / len(y)


def naive_wape(y, p) -> float:
    return sum(abs(a - b) for a, b in zip(y.tolist(), p.tolist())) / sum(abs(a) for a in y.tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_metrics_match_a_naive_reference_and_sklearn(seed):
    from sklearn.metrics import mean_poisson_deviance

    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 4.0, size=400)  # many slow sellers, a few fast ones
    y = rng.poisson(rate).astype(float)  # about a third are 0
    p = rate * rng.lognormal(0.0, 0.3, size=400)
    assert (y == 0).sum() > 50
    assert regression.poisson_deviance(y, p) == pytest.approx(naive_poisson_deviance(y, p), rel=1e-12)
    assert regression.poisson_deviance(y, p) == pytest.approx(mean_poisson_deviance(y, p), rel=1e-12)
    assert regression.wape(y, p) == pytest.approx(naive_wape(y, p), rel=1e-12)


def test_count_metrics_known_answers():
    y = np.array([0.0, 1.0, 3.0])
    assert regression.poisson_deviance(y, y) == 0.0  # a perfect forecast
    assert regression.wape(y, y) == 0.0
    # y = 2 at p = 1: 2 (2 log 2 - 1); y = 0 at p = 1: 2
    assert regression.poisson_deviance(np.array([2.0, 0.0]), np.ones(2)) == pytest.approx((4 * math.log(2) - 2 + 2) / 2)
    assert regression.wape(np.array([2.0, 0.0, 2.0]), np.array([1.0, 1.0, 2.0])) == 0.5  # 2 units off of 4 sold
    assert regression.wape(-y, -y - 1) == pytest.approx(3 / 4)  # weighted by |y| whatever the sign


def test_count_metrics_on_degenerate_inputs():
    zeros, ones = np.zeros(4), np.ones(4)
    # nothing sold: the deviance is 2p per row (0 for a forecast of 0); WAPE has no units to weigh by
    assert regression.poisson_deviance(zeros, zeros) == 0.0
    assert regression.poisson_deviance(zeros, ones * 0.5) == 1.0
    assert math.isnan(regression.wape(zeros, zeros)) and math.isnan(regression.wape(zeros, ones))
    # a forecast of 0 where something sold: infinitely unlikely; WAPE: every unit missed
    assert regression.poisson_deviance(ones, zeros) == math.inf
    assert regression.wape(ones * 3, zeros) == 1.0
    # a constant forecast at the mean of constant sales is perfect
    assert regression.poisson_deviance(ones * 2, ones * 2) == 0.0
    # undefined on negative counts or forecasts, and on no rows
    assert math.isnan(regression.poisson_deviance(np.array([-1.0, 1.0]), ones[:2]))
    assert math.isnan(regression.poisson_deviance(ones[:2], np.array([1.0, -0.1])))
    for fn in (regression.poisson_deviance, regression.wape):
        assert math.isnan(fn(np.array([]), np.array([])))
        assert type(fn(ones, ones)) is float
