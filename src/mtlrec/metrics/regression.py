"""Metrics of a regression task: targets y [N], predictions p [N]; nan on empty input.

``poisson_deviance`` and ``wape`` are the metrics of counts (units sold): both need y >= 0 and
p >= 0 and are nan where they are not defined (a negative value, or WAPE when nothing was sold)."""

from __future__ import annotations

import numpy as np

from mtlrec.metrics._inputs import pair_1d

NAN = float("nan")


def mse(y: np.ndarray, p: np.ndarray) -> float:
    y, p = pair_1d(y, p)
    return float(np.mean((p - y) ** 2)) if y.size else NAN


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(mse(y, p)))


def mae(y: np.ndarray, p: np.ndarray) -> float:
    y, p = pair_1d(y, p)
    return float(np.mean(np.abs(p - y))) if y.size else NAN


def poisson_deviance(y: np.ndarray, p: np.ndarray) -> float:
    """Mean Poisson unit deviance 2 (y log(y / p) - y + p), with 0 log 0 = 0: 0 for a perfect
    forecast, 2p where nothing was sold, inf where p = 0 but y > 0 (scikit-learn's
    mean_poisson_deviance, which refuses p = 0). nan on empty input or a negative y or p."""
    y, p = pair_1d(y, p)
    if not y.size or (y < 0).any() or (p < 0).any():
        return NAN
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / p), 0.0)  # inf where p = 0 < y
    return float(np.mean(2.0 * (log_term - y + p)))


def wape(y: np.ndarray, p: np.ndarray) -> float:
    """Weighted absolute percentage error sum |y - p| / sum |y| (sum y for counts): the absolute
    error per unit sold, so a few slow sellers cannot blow it up as they do a mean of per-row
    percentages. nan when sum |y| is 0 (nothing to weigh by) or on empty input."""
    y, p = pair_1d(y, p)
    total = float(np.abs(y).sum())
    return float(np.abs(y - p).sum() / total) if total > 0 else NAN
