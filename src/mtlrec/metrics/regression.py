"""Metrics of a regression task: targets y [N], predictions p [N]; nan on empty input."""

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
