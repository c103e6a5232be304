"""Metrics of a multilabel task: labels y in {0, 1} [N, K], probabilities p [N, K].

Every function returns a plain float, and nan on empty input. F1 calls a label positive when
p >= 0.5 and counts 0.0 where it is undefined (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import numpy as np

from mtlrec.metrics._inputs import pair_2d, safe_ratio
from mtlrec.metrics.binary import THRESHOLD, auc, per_group_auc

NAN = float("nan")


def _matrices(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = pair_2d(y, p, what="multilabel")
    if y.shape != p.shape:
        raise ValueError(f"multilabel metrics: labels {y.shape} and predictions {p.shape} differ")
    return y > 0.5, p


def micro_auc(y: np.ndarray, p: np.ndarray) -> float:
    """AUC of all (row, label) pairs pooled."""
    y, p = _matrices(y, p)
    return auc(y.reshape(-1), p.reshape(-1))


def macro_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean AUC over the labels that have both classes; nan when none does."""
    y, p = _matrices(y, p)
    label = np.broadcast_to(np.arange(p.shape[1]), p.shape)  # [N, K]: column index of each cell
    auc_k, _ = per_group_auc(y.reshape(-1), p.reshape(-1), label.reshape(-1))
    ok = ~np.isnan(auc_k)
    return float(auc_k[ok].mean()) if ok.any() else NAN


def counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn) per label [K]."""
    y, p = _matrices(y, p)
    pred = p >= THRESHOLD
    tp = np.count_nonzero(y & pred, axis=0)
    fp = np.count_nonzero(~y & pred, axis=0)
    fn = np.count_nonzero(y & ~pred, axis=0)
    return tp, fp, fn


def micro_f1(y: np.ndarray, p: np.ndarray) -> float:
    """F1 of all (row, label) decisions pooled."""
    return micro_f1_of(*counts(y, p)) if len(y) else NAN


def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    """F1 of each of the K labels, averaged unweighted."""
    return macro_f1_of(*counts(y, p)) if len(y) else NAN


def micro_f1_of(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    return float(safe_ratio(2 * tp, 2 * tp + fp + fn))


def macro_f1_of(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    return float(np.mean(safe_ratio(2 * tp, 2 * tp + fp + fn)))
