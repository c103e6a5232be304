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
