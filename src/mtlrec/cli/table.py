"""Markdown tables for the terminal and for files."""

from __future__ import annotations

import math
from typing import Any, Sequence

from mtlrec.spec import TaskSpec


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


HEADLINE = {"binary": "auc", "regression": "rmse", "multiclass": "accuracy", "multilabel": "micro_auc"}


def headline(task: TaskSpec) -> str:
    """The metric a table shows for ``task``: its kind's (``HEADLINE``), or poisson_deviance for a
    task with loss poisson; the task's first metric when it does not report that one."""
    metric = "poisson_deviance" if task.loss_name == "poisson" else HEADLINE[task.kind]
    return metric if metric in task.metric_names else task.metric_names[0]
