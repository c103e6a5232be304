"""Metrics of a multiclass task: labels y int [N] in [0, K), class probabilities p [N, K].

Every function returns a plain float, and nan on empty input.
"""

from __future__ import annotations

import numpy as np

from mtlrec.metrics._inputs import pair_2d, safe_ratio

EPS = 1e-7
NAN = float("nan")


def _labels_and_probs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = pair_2d(np.asarray(y).reshape(-1), p, what="multiclass")
    n_classes = p.shape[1]
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"multiclass metrics: labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}"
        )
    return y.astype(np.int64), p


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of rows whose most probable class is the label."""
    y, p = _labels_and_probs(y, p)
    if y.size == 0:
        return NAN
    return float(np.mean(p.argmax(axis=1) == y))


def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    """F1 of each of the K classes (argmax prediction; 0.0 where undefined), averaged unweighted."""
    y, p = _labels_and_probs(y, p)
    if y.size == 0:
        return NAN
    return macro_f1_of(confusion_matrix(y, p))


def confusion_matrix(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """[K, K] counts: row = label, column = the most probable class."""
    y, p = _labels_and_probs(y, p)
    k = p.shape[1]
    return np.bincount(y * k + p.argmax(axis=1), minlength=k * k).reshape(k, k)


def macro_f1_of(counts: np.ndarray) -> float:
    """``macro_f1`` from a confusion matrix [K, K] (row = label, column = prediction)."""
    tp = np.diag(counts)
    return float(np.mean(safe_ratio(2 * tp, counts.sum(axis=1) + counts.sum(axis=0))))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean cross-entropy; p clipped to [1e-7, 1 - 1e-7] and each row renormalised to sum to 1."""
    y, p = _labels_and_probs(y, p)
    if y.size == 0:
        return NAN
    p = np.clip(p, EPS, 1 - EPS)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(y.size), y])))
