"""The validation number that early stopping and best-epoch selection watch.

``monitor`` is ``<task>.<metric>`` (e.g. ``click.auc``), ``mean.<metric>`` (the mean over the tasks
that report it), or ``auto``: ``mean.auc`` when any task reports AUC, else the first task's first
metric. A task whose metric is undefined (nan: one class in the valid split) leaves the mean; with no
value at all, the last epoch is kept. ``single_class_warnings`` says so when the data is prepared."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from mtlrec.data.batches import EncodedData
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


def better(value: float, best: float) -> bool:
    """Whether an epoch whose monitored value is ``value`` beats the best so far: a number beats nan,
    nan never beats a number, and with no value at all (every epoch nan: an empty valid split, or
    a monitored task with one class there) each epoch beats the last, so the last one is kept."""
    return math.isnan(best) or value > best


def single_class_warnings(tasks: Sequence[TaskSpec], encoded: Mapping[str, EncodedData], monitor: str) -> list[str]:
    """One line for each split in which a binary task's sample space holds one class (or no row):
    the metrics that need both classes are undefined (nan) there, and early stopping chooses on the
    tasks that have a value. An empty valid or test split gets one line of its own."""
    scope, _, metric = monitor.partition(".")
    lines = []
    for split, data in encoded.items():
        if not len(data):
            if split != "train":
                keeps = ", and early stopping keeps the last epoch" if split == "valid" else ""
                lines.append(f"the {split} split has no rows (data.split.{split}: 0): it has no metrics{keeps}")
            continue
        counts = {t.name: data.class_counts(t.name) for t in tasks if t.kind == "binary"}
        one_class = {name: (n, pos) for name, (n, pos) in counts.items() if not 0 < pos < n}
        for t in tasks:
            if t.name not in one_class:
                continue
            n, positives = one_class[t.name]
            rows = f"{n} row{'s' if n > 1 else ''}" + (f" where {t.where} = 1" if t.where else "")
            line = f"task '{t.name}': the {split} split has " + (
                f"only one class (all {int(positives > 0)}) on its {rows}" if n else f"no rows where {t.where} = 1"
            )
            if split == "train":
                lines.append(f"{line}; the model cannot learn to tell its classes apart")
                continue
            need_both = ("auc", "gauc") if positives else ("auc", "gauc", "calibration")
            undefined = [m for m in t.metric_names if not n or m in need_both]
            if not undefined:
                continue
            line += f"; its {', '.join(undefined)} {'is' if len(undefined) == 1 else 'are'} undefined"
            if split == "valid" and metric in undefined and scope in ("mean", t.name):
                others = [o.name for o in tasks if metric in o.metric_names and o.name not in one_class]
                if scope == "mean" and others:
                    line += f", so early stopping ({monitor}) uses the other tasks ({', '.join(others)})"
                else:
                    line += f", so train.monitor '{monitor}' has no value (early stopping keeps the last epoch)"
            lines.append(line)
    return lines

