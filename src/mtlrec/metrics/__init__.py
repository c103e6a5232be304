"""Evaluation metrics as pure numpy functions, one module per task kind.

``task_metrics`` computes the metrics named in a task's spec (see ``spec.METRIC_NAMES``);
``METRIC_MODE`` says which direction of each metric is better: 'max', 'min', or 'target1'
(closer to 1 is better, for calibration).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mtlrec.metrics import binary, multiclass, multilabel, regression
from mtlrec.metrics._inputs import pair_1d
from mtlrec.metrics.binary import auc, gauc

__all__ = [
    "METRIC_MODE",
    "auc",
    "binary",
    "gauc",
    "multiclass",
    "multilabel",
    "regression",
    "task_metrics",
]

# (y_true, y_pred, groups) -> value
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]


def _ungrouped(fn: Callable[[np.ndarray, np.ndarray], float]) -> Metric:
    return lambda y, p, groups: fn(y, p)


def _gauc_or_nan(y: np.ndarray, p: np.ndarray, groups: np.ndarray | None) -> float:
    return float("nan") if groups is None else binary.gauc(y, p, groups)


NDCG_K = 10


def _ndcg_or_nan(y: np.ndarray, p: np.ndarray, groups: np.ndarray | None) -> float:
    """NDCG@NDCG_K of each group's rows (a query's results, a user's page) ranked by ``p``, the label
    as gain, averaged over the groups with a positive; nan without groups or positives. The ranking
    code is rank.objectives' (ties: the earlier row first)."""
    y, p = pair_1d(y, p)
    if groups is None or y.size == 0:
        return float("nan")
    from mtlrec.rank.objectives import ranking_metrics

    return ranking_metrics(np.asarray(groups).reshape(-1), p, {"label": y}, NDCG_K)["label"]["ndcg"]


METRICS: dict[str, dict[str, Metric]] = {
    "binary": {
        "auc": _ungrouped(binary.auc),
        "gauc": _gauc_or_nan,
        "logloss": _ungrouped(binary.logloss),
        "calibration": _ungrouped(binary.calibration),
        "accuracy": _ungrouped(binary.accuracy),
        "precision": _ungrouped(binary.precision),
        "recall": _ungrouped(binary.recall),
        "f1": _ungrouped(binary.f1),
        f"ndcg@{NDCG_K}": _ndcg_or_nan,
    },
    "regression": {
        "mse": _ungrouped(regression.mse),
        "rmse": _ungrouped(regression.rmse),
        "mae": _ungrouped(regression.mae),
        "poisson_deviance": _ungrouped(regression.poisson_deviance),
        "wape": _ungrouped(regression.wape),
    },
    "multiclass": {
        "accuracy": _ungrouped(multiclass.accuracy),
        "macro_f1": _ungrouped(multiclass.macro_f1),
        "logloss": _ungrouped(multiclass.logloss),
    },
    "multilabel": {
        "micro_auc": _ungrouped(multilabel.micro_auc),
        "macro_auc": _ungrouped(multilabel.macro_auc),
        "micro_f1": _ungrouped(multilabel.micro_f1),
        "macro_f1": _ungrouped(multilabel.macro_f1),
    },
}

METRIC_MODE: dict[str, str] = {
    "auc": "max",
    "gauc": "max",
    f"ndcg@{NDCG_K}": "max",
    "logloss": "min",
    "calibration": "target1",
    "accuracy": "max",
    "precision": "max",
    "recall": "max",
    "f1": "max",
    "mse": "min",
    "rmse": "min",
    "mae": "min",
    "poisson_deviance": "min",
    "wape": "min",
    "macro_f1": "max",
    "micro_auc": "max",
    "macro_auc": "max",
    "micro_f1": "max",
}


def task_metrics(
    kind: str,
    names: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray | None = None,
) -> dict[str, float]:
    """The named metrics of one task of ``kind``, as plain floats keyed by name.

    binary/regression: y_true [N], y_pred [N] (or [N, 1]); multiclass: y_true int [N],
    y_pred probabilities [N, K]; multilabel: y_true {0, 1} [N, K], y_pred [N, K].
    ``groups`` [N] are the GAUC group ids (e.g. user); 'gauc' is nan without them.
    """
    table = METRICS.get(kind)
    if table is None:
        raise ValueError(f"metrics: unknown task kind '{kind}'; expected one of {', '.join(METRICS)}")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(
            f"metrics: unknown {kind} metric(s) {', '.join(unknown)}; expected some of {', '.join(table)}"
        )
    return {name: float(table[name](y_true, y_pred, groups)) for name in names}
