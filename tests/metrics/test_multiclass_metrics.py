"""Multiclass metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from mtlrec.metrics import multiclass


def _data(seed: int, n: int, k: int, missing_class: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.ones(k))  # imbalanced classes
    if missing_class:  # the last class never occurs and is never predicted
        prior[-1] = 0.0
        prior /= prior.sum()
    y = rng.choice(k, size=n, p=prior)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    if missing_class:
        logits[:, -1] = -20.0
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


CASES = [(0, 600, 3, False), (1, 1000, 6, False), (2, 400, 5, True), (3, 50, 8, False)]


@pytest.mark.parametrize("case", CASES)
def test_multiclass_metrics_match_sklearn(case):
    y, p = _data(*case)
    k = p.shape[1]
    pred = p.argmax(axis=1)
    assert multiclass.accuracy(y, p) == pytest.approx(accuracy_score(y, pred))
    expected_f1 = f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)
    assert multiclass.macro_f1(y, p) == pytest.approx(expected_f1, abs=1e-12)
    assert multiclass.logloss(y, p) == pytest.approx(log_loss(y, p, labels=list(range(k))), rel=1e-6)


def test_macro_f1_counts_unseen_classes_as_zero():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    assert multiclass.accuracy(y, p) == 1.0
    assert multiclass.macro_f1(y, p) == pytest.approx(2 / 3)  # class 2: no support, no predictions


def test_logloss_renormalises_rows_and_clips():
    y, p = _data(0, 200, 4, False)
    assert multiclass.logloss(y, 0.5 * p) == pytest.approx(multiclass.logloss(y, p), rel=1e-9)
    y = np.array([0])
    p = np.array([[0.0, 1.0]])  # clipped to 1e-7 and 1 - 1e-7, which already sum to 1
    assert multiclass.logloss(y, p) == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_labels_out_of_range_raise():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        multiclass.accuracy(np.array([0, 2]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"must be \[N, K\]"):
        multiclass.accuracy(np.array([0, 1]), np.array([0.2, 0.8]))


@pytest.mark.parametrize("fn", [multiclass.accuracy, multiclass.macro_f1, multiclass.logloss])
def test_empty_input_is_nan(fn):
    value = fn(np.zeros(0, dtype=int), np.zeros((0, 3)))
    assert type(value) is float and math.isnan(value)
