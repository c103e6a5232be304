"""The validation number that early stopping and best-epoch selection watch.

``monitor`` is ``<task>.<metric>`` (e.g. ``click.auc``), ``mean.<metric>`` (the mean over the tasks
that report it), or ``auto``: ``mean.auc`` when any task reports AUC, else the first task's first
metric."""

from __future__ import annotations

import math
from typing import Sequence

from mtlrec.errors import ConfigError
from mtlrec.metrics import METRIC_MODE
from mtlrec.spec import TaskSpec


def resolve_monitor(monitor: str, tasks: Sequence[TaskSpec]) -> str:
    if monitor == "auto":
        if any("auc" in t.metric_names for t in tasks):
            return "mean.auc"
        return f"{tasks[0].name}.{tasks[0].metric_names[0]}"
    scope, _, metric = monitor.partition(".")
    names = {t.name: t for t in tasks}
    if scope == "mean" and any(metric in t.metric_names for t in tasks):
        return monitor
    if scope in names and metric in names[scope].metric_names:
        return monitor
    raise ConfigError(
        f"train.monitor: '{monitor}' is not a metric of these tasks; expected 'auto', "
        f"'mean.<metric>' or '<task>.<metric>' (e.g. '{tasks[0].name}.{tasks[0].metric_names[0]}')"
    )


def monitored_value(monitor: str, metrics: dict[str, dict[str, float]]) -> float:
    """The monitored number, oriented so that larger is better (nan when undefined)."""
    scope, _, metric = monitor.partition(".")
    values = [m[metric] for m in metrics.values() if metric in m] if scope == "mean" else [metrics[scope][metric]]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan
    value = sum(values) / len(values)
    mode = METRIC_MODE[metric]
    return -value if mode == "min" else -abs(value - 1.0) if mode == "target1" else value
