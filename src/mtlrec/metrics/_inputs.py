"""Input checks shared by the metric modules."""

from __future__ import annotations

import numpy as np


def pair_1d(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 vectors [N] (a trailing [N, 1] is flattened); lengths must match."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"metrics: {y.size} labels but {p.size} predictions; expected one per row")
    return y, p


def pair_2d(y_true: np.ndarray, y_pred: np.ndarray, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Predictions as float64 [N, K]; labels as given (shape checked by the caller's kind)."""
    y = np.asarray(y_true)
    p = np.asarray(y_pred, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{what} metrics: predictions must be [N, K], got shape {p.shape}")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"{what} metrics: {y.shape[0]} label rows but {p.shape[0]} prediction rows")
    return y, p


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0.0 where den == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out
