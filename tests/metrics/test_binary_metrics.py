"""Binary metrics against scikit-learn and a naive per-group GAUC reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mtlrec.metrics import binary

# (seed, n, positive rate, decimals the scores are rounded to: None = continuous)
CASES = [
    (0, 500, 0.5, None),
    (1, 2000, 0.03, None),  # imbalanced
    (2, 1000, 0.4, 1),  # heavy ties, incl. scores exactly at 0.5
    (3, 800, 0.1, 0),  # scores are only 0.0 or 1.0
    (4, 300, 0.97, 2),  # mostly positive, ties
]


def _data(seed: int, n: int, rate: float, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.float32)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0.01, 0.99)  # informative but noisy
    if decimals is not None:
        p = np.round(p, decimals)
    return y, p


def naive_gauc(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> float:
    total, weight = 0.0, 0
    for g in np.unique(groups):
        mask = groups == g
        if len(np.unique(y[mask])) < 2:
            continue
        total += roc_auc_score(y[mask], p[mask]) * mask.sum()
        weight += mask.sum()
    return total / weight if weight else float("nan")


@pytest.mark.parametrize("case", CASES)
def test_auc_matches_sklearn(case):
    y, p = _data(*case)
    assert binary.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_logloss_matches_sklearn(case):
    y, p = _data(*case)
    p = np.clip(p, 0.01, 0.99)  # away from the clip bound, where the two libraries differ
    assert binary.logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_thresholded_metrics_match_sklearn(case):
    y, p = _data(*case)
    pred = (p >= 0.5).astype(int)
    assert binary.accuracy(y, p) == pytest.approx(accuracy_score(y, pred))
    assert binary.precision(y, p) == pytest.approx(precision_score(y, pred, zero_division=0))
    assert binary.recall(y, p) == pytest.approx(recall_score(y, pred, zero_division=0))
    assert binary.f1(y, p) == pytest.approx(f1_score(y, pred, zero_division=0))


@pytest.mark.parametrize("case", CASES)
def test_calibration_is_mean_ratio(case):
    y, p = _data(*case)
    assert binary.calibration(y, p) == pytest.approx(p.mean() / y.mean())


@pytest.mark.parametrize("decimals", [None, 1])
def test_gauc_matches_naive_reference(decimals):
    rng = np.random.default_rng(10)
    n = 3000
    groups = rng.integers(0, 300, n)  # sizes vary; many groups hold one class only
    y = (rng.random(n) < rng.random(300)[groups] * 0.5).astype(np.int64)
    p = 0.3 * y + 0.7 * rng.random(n)
    if decimals is not None:
        p = np.round(p, decimals)
    expected = naive_gauc(y, p, groups)
    assert binary.gauc(y, p, groups) == pytest.approx(expected, abs=1e-12)
    # row order must not matter
    perm = rng.permutation(n)
    assert binary.gauc(y[perm], p[perm], groups[perm]) == pytest.approx(expected, abs=1e-12)


def test_gauc_accepts_string_groups_and_ignores_one_class_groups():
    y = np.array([1, 0, 1, 1, 0, 0, 1])
    p = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.3, 0.5])
    groups = np.array(["u1", "u1", "u2", "u2", "u2", "u3", "u3"])
    # u1: 1.0 (size 2); u2: positives 0.2, 0.8 vs negative 0.7 -> 0.5 (size 3); u3: 1.0 (size 2)
    assert binary.gauc(y, p, groups) == pytest.approx((2 * 1.0 + 3 * 0.5 + 2 * 1.0) / 7)
    only_one = np.array(["u1", "u1", "u2", "u2", "u2", "u4", "u5"])
    # u4 and u5 hold one row each and do not count
    assert binary.gauc(y, p, only_one) == pytest.approx((2 * 1.0 + 3 * 0.5) / 5)


def test_gauc_with_one_group_equals_auc():
    y, p = _data(2, 1000, 0.4, 1)
    assert binary.gauc(y, p, np.full(y.size, 7)) == pytest.approx(binary.auc(y, p), abs=1e-12)


def test_gauc_is_nan_when_no_group_has_both_classes():
    y = np.array([1, 1, 0, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert math.isnan(binary.gauc(y, p, np.array([0, 0, 1, 1])))


def test_auc_known_answers():
    y = np.array([0, 0, 1, 1, 1])
    assert binary.auc(y, np.array([0.1, 0.2, 0.3, 0.4, 0.9])) == 1.0
    assert binary.auc(y, np.array([0.9, 0.8, 0.3, 0.2, 0.1])) == 0.0
    assert binary.auc(y, np.full(5, 0.42)) == 0.5
    assert math.isnan(binary.auc(np.ones(5), np.linspace(0, 1, 5)))
    assert math.isnan(binary.auc(np.zeros(5), np.linspace(0, 1, 5)))


def test_auc_accepts_column_predictions():
    y, p = _data(0, 500, 0.5, None)
    assert binary.auc(y, p[:, None]) == pytest.approx(roc_auc_score(y, p))


def test_auc_rejects_nan_scores_and_mismatched_lengths():
    with pytest.raises(ValueError, match="NaN"):
        binary.auc(np.array([0, 1]), np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        binary.auc(np.array([0, 1, 1]), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="2 group ids but 3 rows"):
        binary.gauc(np.array([0, 1, 1]), np.array([0.5, 0.6, 0.7]), np.array([1, 2]))


def test_threshold_is_inclusive_and_undefined_ratios_are_zero():
    y = np.array([1, 0])
    assert binary.precision(y, np.array([0.5, 0.49])) == 1.0  # 0.5 counts as positive
    assert binary.recall(y, np.array([0.5, 0.49])) == 1.0
    no_positive_prediction = np.array([0.1, 0.2])
    assert binary.precision(y, no_positive_prediction) == 0.0
    assert binary.f1(y, no_positive_prediction) == 0.0
    assert binary.recall(np.array([0, 0]), np.array([0.9, 0.1])) == 0.0
    assert binary.accuracy(y, no_positive_prediction) == 0.5


def test_logloss_clips_extreme_probabilities():
    y = np.array([1.0, 0.0])
    value = binary.logloss(y, np.array([0.0, 1.0]))
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_calibration_known_answers():
    assert binary.calibration(np.array([1, 0, 0, 0]), np.full(4, 0.25)) == 1.0
    assert binary.calibration(np.array([1, 0, 0, 0]), np.full(4, 0.5)) == 2.0
    assert math.isnan(binary.calibration(np.zeros(4), np.full(4, 0.5)))


@pytest.mark.parametrize(
    "fn",
    [binary.auc, binary.logloss, binary.calibration, binary.accuracy, binary.precision,
     binary.recall, binary.f1],
)
def test_empty_input_is_nan(fn):
    value = fn(np.array([]), np.array([]))
    assert isinstance(value, float) and math.isnan(value)
    assert math.isnan(binary.gauc(np.array([]), np.array([]), np.array([])))


def test_values_are_python_floats():
    y, p = _data(0, 100, 0.5, None)
    for fn in (binary.auc, binary.logloss, binary.calibration, binary.accuracy, binary.precision,
               binary.recall, binary.f1):
        assert type(fn(y, p)) is float
    assert type(binary.gauc(y, p, np.arange(100) % 3)) is float
