"""Multilabel metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from mtlrec.metrics import multilabel


def _data(seed: int, n: int, k: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.02, 0.6, size=k)  # imbalanced, differently per label
    y = (rng.random((n, k)) < rates).astype(np.int64)
    y[:, 0] = 0  # one label never occurs: skipped by macro_auc, f1 0 in macro_f1
    p = 0.3 * y + 0.7 * rng.random((n, k))
    if decimals is not None:
        p = np.round(p, decimals)
    return y, p


CASES = [(0, 500, 5, None), (1, 800, 8, 1), (2, 100, 3, 0)]


@pytest.mark.parametrize("case", CASES)
def test_multilabel_metrics_match_sklearn(case):
    y, p = _data(*case)
    assert multilabel.micro_auc(y, p) == pytest.approx(roc_auc_score(y.ravel(), p.ravel()), abs=1e-12)
    per_label = [roc_auc_score(y[:, j], p[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    assert multilabel.macro_auc(y, p) == pytest.approx(np.mean(per_label), abs=1e-12)
    pred = (p >= 0.5).astype(int)
    assert multilabel.micro_f1(y, p) == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert multilabel.macro_f1(y, p) == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))


def test_known_answers():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert multilabel.micro_auc(y, y * 0.8 + 0.1) == 1.0
    assert multilabel.macro_auc(y, 1.0 - y) == 0.0
    assert multilabel.macro_auc(y, np.full(y.shape, 0.3)) == 0.5
    assert multilabel.micro_f1(y, y.astype(float)) == 1.0
    assert math.isnan(multilabel.macro_auc(np.ones((3, 2)), np.random.default_rng(0).random((3, 2))))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differ"):
        multilabel.micro_f1(np.zeros((4, 2)), np.zeros((4, 3)))


@pytest.mark.parametrize(
    "fn", [multilabel.micro_auc, multilabel.macro_auc, multilabel.micro_f1, multilabel.macro_f1]
)
def test_empty_input_is_nan(fn):
    value = fn(np.zeros((0, 3)), np.zeros((0, 3)))
    assert type(value) is float and math.isnan(value)
