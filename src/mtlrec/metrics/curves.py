"""Binned summaries of a task's predictions on a split, small enough to keep in the run directory
and plot later: the reliability curve of a binary task (is a predicted 5 % a 5 % click rate?) and
the residuals of a regression task. Bins hold equal numbers of rows, ordered by prediction, so that
the sparse tail of a click-rate model is not lumped into one bin."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtlrec.metrics._inputs import pair_1d

BINS = 10
HISTOGRAM_BINS = 30
TAIL = 0.005  # the residual histogram spans the 0.5 % to 99.5 % quantiles; the rest is counted outside


def _equal_count_bins(p: np.ndarray, bins: int) -> list[np.ndarray]:
    """Row indices of at most ``bins`` bins of (almost) equal size, by increasing ``p``."""
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    return [b for b in np.array_split(order, min(bins, p.size)) if b.size]


def reliability(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Per bin the mean predicted probability, the observed rate of positives and the count, and
    the expected calibration error (the count-weighted mean gap between the two); empty lists and
    a null error for no rows."""
    y, p = pair_1d(y, p)
    parts = _equal_count_bins(p, bins)
    predicted = [float(p[b].mean()) for b in parts]
    observed = [float(y[b].mean()) for b in parts]
    count = [int(b.size) for b in parts]
    ece = sum(n * abs(a - b) for n, a, b in zip(count, predicted, observed)) / p.size if p.size else None
    return {"predicted": predicted, "observed": observed, "count": count, "ece": ece}


def residuals(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Residuals (label - prediction) of a regression task: a histogram over their central 99 %
    (with the counts below and above it), and per prediction bin the mean prediction, the mean
    label and the 10th, 50th and 90th percentile of the residual."""
    y, p = pair_1d(y, p)
    r = y - p
    if r.size == 0:
        hist = {"edges": [], "counts": [], "below": 0, "above": 0}
    else:
        lo, hi = np.quantile(r, [TAIL, 1 - TAIL])
        if lo == hi:  # constant residuals: one bin around the value
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(r, bins=HISTOGRAM_BINS, range=(lo, hi))
        hist = {"edges": edges.tolist(), "counts": counts.tolist(),
                "below": int((r < lo).sum()), "above": int((r > hi).sum())}  # fmt: skip
    parts = _equal_count_bins(p, bins)
    quantiles = [np.quantile(r[b], [0.1, 0.5, 0.9]) for b in parts]
    by_prediction = {
        "predicted": [float(p[b].mean()) for b in parts],
        "actual": [float(y[b].mean()) for b in parts],
        "p10": [float(q[0]) for q in quantiles],
        "p50": [float(q[1]) for q in quantiles],
        "p90": [float(q[2]) for q in quantiles],
        "count": [int(b.size) for b in parts],
    }
    return {"histogram": hist, "by_prediction": by_prediction}
