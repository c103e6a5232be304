"""Metrics of a binary task: labels y in {0, 1} [N], predicted probabilities p [N].

Every function returns a plain float, and nan on empty input. Thresholded metrics call a row
positive when p >= 0.5; precision, recall and f1 are 0.0 when undefined (scikit-learn's
``zero_division=0``).
"""

from __future__ import annotations

import numpy as np

from mtlrec.metrics._inputs import pair_1d, safe_ratio

THRESHOLD = 0.5
EPS = 1e-7
NAN = float("nan")


def _average_ranks(block_start: np.ndarray) -> np.ndarray:
    """1-based positions in sorted order, averaged over each tie block.

    block_start: bool [N], true where a run of equal sort keys begins (always true at 0).
    """
    starts = np.flatnonzero(block_start)
    ends = np.append(starts[1:], block_start.size)
    return np.repeat((starts + ends + 1) / 2.0, ends - starts)


def per_group_auc(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC [G] and size [G] of every group, groups in sorted order; AUC is nan where a group
    lacks a class.

    Rank-based (Mann-Whitney U with average ranks for tied scores) over one lexsort by
    (group, score), so the cost is O(N log N) however many groups there are.
    """
    y, p = pair_1d(y, p)
    groups = np.asarray(groups).reshape(-1)
    if groups.size != y.size:
        raise ValueError(f"metrics: {groups.size} group ids but {y.size} rows; expected one per row")
    if y.size == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    if not np.isfinite(p).all():
        raise ValueError("auc: predictions contain NaN or inf")
    order = np.lexsort((p, groups))
    g, s, pos = groups[order], p[order], y[order] > 0.5
    new_group = np.ones(g.size, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    new_block = new_group.copy()
    new_block[1:] |= s[1:] != s[:-1]
    group_id = np.cumsum(new_group) - 1  # [N]
    group_start = np.flatnonzero(new_group)  # [G]
    ranks = _average_ranks(new_block) - group_start[group_id]  # 1-based rank within the group
    size = np.bincount(group_id)
    n_pos = np.bincount(group_id, weights=pos)
    n_neg = size - n_pos
    rank_sum = np.bincount(group_id, weights=np.where(pos, ranks, 0.0))
    both = (n_pos > 0) & (n_neg > 0)
    auc_g = np.full(size.size, np.nan)
    auc_g[both] = (rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2) / (n_pos[both] * n_neg[both])
    return auc_g, size


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve; nan when only one class is present."""
    y, p = pair_1d(y, p)
    if y.size == 0:
        return NAN
    auc_g, _ = per_group_auc(y, p, np.zeros(y.size, dtype=np.int8))
    return float(auc_g[0])


def gauc(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: per-group AUC averaged with weight = group size, over groups that contain
    both classes; nan when no group does."""
    auc_g, size = per_group_auc(y, p, groups)
    ok = ~np.isnan(auc_g)
    if not ok.any():
        return NAN
    return float(np.average(auc_g[ok], weights=size[ok]))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy, p clipped to [1e-7, 1 - 1e-7]."""
    y, p = pair_1d(y, p)
    if y.size == 0:
        return NAN
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def calibration(y: np.ndarray, p: np.ndarray) -> float:
    """mean(p) / mean(y): 1.0 is calibrated, above 1 over-predicts; nan when there is no positive."""
    y, p = pair_1d(y, p)
    if y.size == 0 or y.mean() == 0:
        return NAN
    return float(p.mean() / y.mean())


def from_confusion(name: str, tp: int, fp: int, fn: int, tn: int) -> float:
    """accuracy, precision, recall or f1 from the counts of a confusion matrix (nan when empty)."""
    if tp + fp + fn + tn == 0:
        return NAN
    if name == "accuracy":
        return (tp + tn) / (tp + fp + fn + tn)
    num, den = {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn)}[name]
    return float(safe_ratio(num, den))


def confusion(y: np.ndarray, p: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) at p >= THRESHOLD."""
    y, p = pair_1d(y, p)
    truth = y > 0.5
    pred = p >= THRESHOLD
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    return tp, fp, fn, truth.size - tp - fp - fn


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return from_confusion("accuracy", *confusion(y, p))


def precision(y: np.ndarray, p: np.ndarray) -> float:
    return from_confusion("precision", *confusion(y, p))


def recall(y: np.ndarray, p: np.ndarray) -> float:
    return from_confusion("recall", *confusion(y, p))


def f1(y: np.ndarray, p: np.ndarray) -> float:
    return from_confusion("f1", *confusion(y, p))
