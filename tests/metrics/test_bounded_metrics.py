"""Metrics folded chunk by chunk (metrics/bounded.py) against the exact metrics of the whole split:
sums equal, GAUC equal (groups spanning chunks), AUC within the bound it states."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtlrec.metrics import METRICS, binary, task_metrics
from mtlrec.metrics.bounded import BINS, SAMPLE_ROWS, BoundedMetrics, bin_edges, binned_auc


def _fold(kind, y, p, groups, folder, cuts=(0, 1, 700, 700, 2500)):
    """BoundedMetrics over the rows cut at ``cuts`` (an empty chunk and a one-row chunk included)."""
    acc = BoundedMetrics(kind, list(METRICS[kind]), folder)
    edges = [*cuts, len(y)]
    for a, b in zip(edges[:-1], edges[1:]):
        acc.update(y[a:b], p[a:b], None if groups is None else groups[a:b])
    return acc


def _close(got: dict, want: dict, skip: tuple[str, ...] = ()) -> None:
    for name, value in want.items():
        if name in skip:
            continue
        assert (math.isnan(got[name]) and math.isnan(value)) or got[name] == pytest.approx(value, rel=1e-9), name


def test_binned_auc_is_exact_when_no_bin_holds_both_classes_and_within_its_bound_otherwise():
    pos, neg = np.zeros(BINS, np.int64), np.zeros(BINS, np.int64)
    pos[[10, 30]], neg[[5, 20, 40]] = 1, 1  # pairs ordered: (10>5), (30>5), (30>20): 3 of 6
    assert binned_auc(pos, neg) == (0.5, 0.0)
    neg[30] = 2  # two negatives in a positive's bin: 10 pairs, 3 ordered, 2 tied
    auc, bound = binned_auc(pos, neg)
    assert (auc, bound) == (pytest.approx((3 + 0.5 * 2) / 10), pytest.approx(0.5 * 2 / 10))
    assert binned_auc(pos, np.zeros(BINS, np.int64)) == (pytest.approx(math.nan, nan_ok=True), 0.0)


def test_bin_edges_are_sample_values_and_a_frequent_value_begins_its_own_bin():
    sample = np.concatenate([np.linspace(0, 1, 1000), np.full(5000, 0.25)])
    edges = bin_edges(sample)
    assert (np.diff(edges) > 0).all() and np.isin(edges, sample).all() and len(edges) <= BINS - 1
    assert 0.25 in edges  # so 0.25 and the values below it never share a bin
    assert np.searchsorted(edges, 0.2499, side="right") < np.searchsorted(edges, 0.25, side="right")
    assert len(bin_edges(np.zeros(0))) == 0


@pytest.mark.parametrize("scores", ["continuous", "tied", "separated", "opposite", "one_value"])
def test_binary_metrics_folded_equal_the_exact_ones(scores, tmp_path):
    rng = np.random.default_rng(0)
    n = 5000
    y = (rng.random(n) < 0.2).astype(np.float64)
    p = {
        "continuous": 1 / (1 + np.exp(-(rng.normal(size=n) + y))),
        "tied": np.round(rng.random(n), 1),  # ten distinct scores: ties across classes in one bin
        "separated": np.where(y > 0, 0.9, 0.1),
        "opposite": np.where(y > 0, 0.1, 0.9),
        "one_value": np.full(n, 0.3),
    }[scores]
    groups = rng.integers(0, 300, n)  # each group's rows spread over every chunk
    acc = _fold("binary", y, p, groups, tmp_path)
    got, want = acc.result(), task_metrics("binary", list(METRICS["binary"]), y, p, groups)
    _close(got, want, skip=("auc",))
    assert abs(got["auc"] - want["auc"]) <= acc.bound + 1e-12
    if scores == "continuous":
        assert acc.bound < 1e-3
    if scores in ("tied", "separated", "opposite", "one_value"):  # each bin holds one score: exact
        assert got["auc"] == pytest.approx(want["auc"], abs=1e-12)


def test_other_kinds_folded_equal_the_exact_ones(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    y_reg, p_reg = rng.normal(size=n), rng.normal(size=n)
    _close(_fold("regression", y_reg, p_reg, None, tmp_path / "r").result(),
           task_metrics("regression", list(METRICS["regression"]), y_reg, p_reg))  # fmt: skip
    y_mc, p_mc = rng.integers(0, 4, n), rng.dirichlet(np.ones(4), n)
    _close(_fold("multiclass", y_mc, p_mc, None, tmp_path / "c").result(),
           task_metrics("multiclass", list(METRICS["multiclass"]), y_mc, p_mc))  # fmt: skip
    y_ml = (rng.random((n, 5)) < 0.3).astype(np.float64)
    y_ml[:, 4] = 0  # a label with no positive: left out of macro AUC
    p_ml = rng.random((n, 5))
    acc = _fold("multilabel", y_ml, p_ml, None, tmp_path / "l")
    got, want = acc.result(), task_metrics("multilabel", list(METRICS["multilabel"]), y_ml, p_ml)
    _close(got, want, skip=("micro_auc", "macro_auc"))
    for name in ("micro_auc", "macro_auc"):
        assert abs(got[name] - want[name]) <= acc.bound + 1e-12 and acc.bound < 1e-3


def test_count_metrics_folded_equal_the_exact_ones(tmp_path):
    """poisson_deviance and wape of counts, with zeros, a forecast of 0 where something sold (inf),
    and a chunk where nothing sold."""
    rng = np.random.default_rng(2)
    rate = rng.gamma(0.5, 4.0, 3000)
    y, p = rng.poisson(rate).astype(float), rate * rng.lognormal(0.0, 0.3, 3000)
    y[:700] = 0.0  # the second chunk (rows 1-699) sold nothing
    names = ["poisson_deviance", "wape", "rmse"]
    acc = BoundedMetrics("regression", names, tmp_path)
    for a, b in zip((0, 1, 700), (1, 700, 3000)):
        acc.update(y[a:b], p[a:b], None)
    want = task_metrics("regression", names, y, p)
    assert all(np.isfinite(v) for v in want.values())
    _close(acc.result(), want)
    p[2000], y[2000] = 0.0, 3.0
    acc = BoundedMetrics("regression", names, tmp_path)
    acc.update(y, p, None)
    assert acc.result()["poisson_deviance"] == math.inf == task_metrics("regression", names, y, p)["poisson_deviance"]


def test_no_rows_give_nan_and_gauc_without_groups_is_nan(tmp_path):
    acc = BoundedMetrics("binary", ["auc", "gauc", "logloss"], tmp_path)
    acc.update(np.zeros(0), np.zeros(0), None)
    assert all(math.isnan(v) for v in acc.result().values())
    acc.update(np.array([0.0, 1.0]), np.array([0.2, 0.8]), None)
    assert math.isnan(acc.result()["gauc"]) and acc.result()["auc"] == 1.0
    assert acc.result()["logloss"] == pytest.approx(binary.logloss(np.array([0.0, 1.0]), np.array([0.2, 0.8])))


def test_past_the_sample_the_bins_stay_fixed_and_the_bound_holds_when_the_scores_drift(tmp_path):
    rng = np.random.default_rng(2)
    n = SAMPLE_ROWS + 150_000
    y = (rng.random(n) < 0.1).astype(np.float64)
    z = rng.normal(size=n) + 1.5 * y
    z[SAMPLE_ROWS:] += 2.0  # later rows score higher than any bin the sample cut for them
    p = 1 / (1 + np.exp(-z))
    acc = BoundedMetrics("binary", ["auc", "logloss"], tmp_path)
    for a in range(0, n, 100_000):
        acc.update(y[a : a + 100_000], p[a : a + 100_000], None)
    got = acc.result()["auc"]
    assert abs(got - binary.auc(y, p)) <= acc.bound and acc.bound < 0.01
    steady = BoundedMetrics("binary", ["auc"], tmp_path / "steady")
    z[SAMPLE_ROWS:] -= 2.0
    p = 1 / (1 + np.exp(-z))
    for a in range(0, n, 100_000):
        steady.update(y[a : a + 100_000], p[a : a + 100_000], None)
    assert abs(steady.result()["auc"] - binary.auc(y, p)) <= steady.bound < 1e-4
