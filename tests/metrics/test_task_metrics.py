"""task_metrics dispatch and METRIC_MODE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtlrec.metrics import METRIC_MODE, binary, task_metrics
from mtlrec.spec import METRIC_NAMES

RNG = np.random.default_rng(0)
N, K = 200, 4
DATA = {
    "binary": (RNG.integers(0, 2, N), RNG.random(N)),
    "regression": (RNG.poisson(3.0, N).astype(float), RNG.gamma(3.0, 1.0, N)),  # counts: every metric defined
    "multiclass": (RNG.integers(0, K, N), RNG.dirichlet(np.ones(K), size=N)),
    "multilabel": (RNG.integers(0, 2, (N, K)), RNG.random((N, K))),
}
EMPTY = {
    "binary": (np.zeros(0), np.zeros(0)),
    "regression": (np.zeros(0), np.zeros(0)),
    "multiclass": (np.zeros(0, dtype=int), np.zeros((0, K))),
    "multilabel": (np.zeros((0, K)), np.zeros((0, K))),
}


@pytest.mark.parametrize("kind", sorted(METRIC_NAMES))
def test_returns_exactly_the_requested_names_as_floats(kind):
    y, p = DATA[kind]
    names = METRIC_NAMES[kind]
    out = task_metrics(kind, names, y, p, groups=np.arange(N) % 10)
    assert list(out) == list(names)
    assert all(type(v) is float for v in out.values())
    assert not any(math.isnan(v) for v in out.values())
    subset = names[::-1][:2]
    assert list(task_metrics(kind, subset, y, p)) == list(subset)


@pytest.mark.parametrize("kind", sorted(METRIC_NAMES))
def test_empty_input_gives_nan_everywhere(kind):
    y, p = EMPTY[kind]
    out = task_metrics(kind, METRIC_NAMES[kind], y, p, groups=np.zeros(0))
    assert set(out) == set(METRIC_NAMES[kind])
    assert all(math.isnan(v) for v in out.values())


def test_gauc_needs_groups():
    y, p = DATA["binary"]
    groups = np.arange(N) % 10
    assert math.isnan(task_metrics("binary", ["gauc"], y, p)["gauc"])
    out = task_metrics("binary", ["gauc", "auc"], y, p, groups=groups)
    assert out["gauc"] == binary.gauc(y, p, groups)
    assert out["auc"] == binary.auc(y, p)


def test_unknown_kind_or_metric_raises():
    y, p = DATA["binary"]
    with pytest.raises(ValueError, match="unknown binary metric.*mse"):
        task_metrics("binary", ["auc", "mse"], y, p)
    with pytest.raises(ValueError, match="unknown task kind 'ranking'"):
        task_metrics("ranking", ["auc"], y, p)


def test_metric_mode_covers_every_metric():
    names = {n for kind_names in METRIC_NAMES.values() for n in kind_names}
    assert set(METRIC_MODE) == names
    assert set(METRIC_MODE.values()) == {"max", "min", "target1"}
    minimised = ["logloss", "mse", "rmse", "mae", "poisson_deviance", "wape"]
    assert [n for n, m in METRIC_MODE.items() if m == "min"] == minimised
    assert METRIC_MODE["calibration"] == "target1"
