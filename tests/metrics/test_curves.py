"""Reliability bins and residual summaries (metrics/curves.py) against known answers, a naive
re-implementation, and degenerate inputs (empty, constant, fewer rows than bins)."""

from __future__ import annotations

import numpy as np
import pytest

from mtlrec.metrics.curves import HISTOGRAM_BINS, reliability, residuals


def test_reliability_known_answer():
    r = reliability(np.array([0, 0, 1, 1]), np.array([0.4, 0.1, 0.3, 0.2]), bins=2)
    # by prediction: (0.1, 0.2) with labels (0, 1), then (0.3, 0.4) with labels (1, 0)
    assert r["predicted"] == pytest.approx([0.15, 0.35])
    assert r["observed"] == pytest.approx([0.5, 0.5])
    assert r["count"] == [2, 2]
    assert r["ece"] == pytest.approx((2 * 0.35 + 2 * 0.15) / 4)


def test_reliability_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=1003)
    y = (rng.uniform(size=p.size) < p).astype(float)
    r = reliability(y, p, bins=10)
    order = sorted(range(p.size), key=lambda i: p[i])
    sizes = [p.size // 10 + (1 if k < p.size % 10 else 0) for k in range(10)]
    start, ece = 0, 0.0
    for k, size in enumerate(sizes):
        rows = order[start : start + size]
        start += size
        mean_p, rate = sum(p[i] for i in rows) / size, sum(y[i] for i in rows) / size
        assert r["predicted"][k] == pytest.approx(mean_p) and r["observed"][k] == pytest.approx(rate)
        assert r["count"][k] == size
        ece += size * abs(mean_p - rate) / p.size
    assert r["ece"] == pytest.approx(ece)
    assert r["ece"] < 0.06  # labels drawn from p: calibrated up to noise


def test_reliability_degenerate_inputs():
    assert reliability(np.array([]), np.array([])) == {"predicted": [], "observed": [], "count": [], "ece": None}
    few = reliability(np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.5, 0.5]), bins=10)
    assert few["count"] == [1, 1, 1] and few["predicted"] == [0.5, 0.5, 0.5]  # one row per bin at most
    assert few["ece"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        reliability(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


def test_residuals_histogram_and_bins():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 100, size=2000)
    y = p + rng.normal(0, 5, size=p.size)
    y[:3] += 1000  # three outliers beyond the histogram's range
    r = residuals(y, p, bins=4)
    h, b = r["histogram"], r["by_prediction"]
    assert len(h["counts"]) == HISTOGRAM_BINS and len(h["edges"]) == HISTOGRAM_BINS + 1
    assert sum(h["counts"]) + h["below"] + h["above"] == p.size
    assert h["above"] >= 3
    res = y - p
    inside = (res >= h["edges"][0]) & (res <= h["edges"][-1])
    assert sum(h["counts"]) == int(inside.sum())
    order = np.argsort(p, kind="stable")
    for k, rows in enumerate(np.array_split(order, 4)):
        assert b["count"][k] == rows.size
        assert b["predicted"][k] == pytest.approx(p[rows].mean()) and b["actual"][k] == pytest.approx(y[rows].mean())
        assert b["p50"][k] == pytest.approx(np.percentile(res[rows], 50))
        assert b["p10"][k] <= b["p50"][k] <= b["p90"][k]


def test_residuals_degenerate_inputs():
    empty = residuals(np.array([]), np.array([]))
    assert empty["histogram"] == {"edges": [], "counts": [], "below": 0, "above": 0}
    assert empty["by_prediction"]["count"] == []
    exact = residuals(np.full(5, 3.0), np.full(5, 3.0))  # every residual 0: one range around it
    assert sum(exact["histogram"]["counts"]) == 5 and exact["histogram"]["edges"][0] < 0 < exact["histogram"]["edges"][-1]
    assert exact["by_prediction"]["p10"] == [0.0] * 5
