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


def ndcg_reference(y: np.ndarray, p: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    """NDCG@k one group at a time: sort by score (stable: the earlier row first on ties), gain y,
    discount log2(rank + 2), over the ideal order's; mean over groups with a positive."""
    values = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        gains = y[rows][np.argsort(-p[rows], kind="stable")][:k]
        ideal = np.sort(y[rows])[::-1][:k]
        if ideal.sum() > 0:
            discount = 1 / np.log2(np.arange(2, 2 + k))
            values.append((gains * discount[: len(gains)]).sum() / (ideal * discount[: len(ideal)]).sum())
    return float(np.mean(values)) if values else math.nan


def test_ndcg_against_a_per_group_reference_and_degenerate_inputs():
    y, p = DATA["binary"]
    groups = RNG.integers(0, 7, N)  # lists longer than 10: the cut-off matters
    got = task_metrics("binary", ["ndcg@10"], y, p, groups=groups)["ndcg@10"]
    assert got == pytest.approx(ndcg_reference(y.astype(float), p, groups), abs=1e-12)
    tied = np.round(p, 1)  # ties: the earlier row first, as the reference's stable sort
    assert task_metrics("binary", ["ndcg@10"], y, tied, groups=groups)["ndcg@10"] == pytest.approx(
        ndcg_reference(y.astype(float), tied, groups), abs=1e-12)
    assert task_metrics("binary", ["ndcg@10"], y, y + 0.0, groups=groups)["ndcg@10"] == 1.0  # a perfect ranking
    assert math.isnan(task_metrics("binary", ["ndcg@10"], y, p)["ndcg@10"])  # no groups
    assert math.isnan(task_metrics("binary", ["ndcg@10"], np.zeros(N), p, groups=groups)["ndcg@10"])  # no positive
    assert math.isnan(task_metrics("binary", ["ndcg@10"], *EMPTY["binary"], groups=np.zeros(0))["ndcg@10"])


def test_optional_metrics_are_named_not_default():
    from mtlrec.spec import TaskSpec

    assert "ndcg@10" not in TaskSpec("click", "binary").metric_names
    assert TaskSpec("click", "binary", metrics=("auc", "ndcg@10")).metric_names == ("auc", "ndcg@10")
    with pytest.raises(ValueError, match="unknown regression metric.*ndcg@10.*expected some of mse"):
        TaskSpec("value", "regression", metrics=("ndcg@10",))


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
