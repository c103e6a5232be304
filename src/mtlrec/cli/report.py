"""Per-task metric tables for the CLI."""

from __future__ import annotations

from typing import Any

from mtlrec.cli.table import markdown


def metrics_table(metrics: dict[str, dict[str, float]], oracle: dict[str, dict[str, float]] | None = None) -> str:
    """One row per task and metric; an oracle column when ground truth is known."""
    header = ["task", "metric", "value"] + (["oracle"] if oracle else [])
    rows: list[list[Any]] = []
    for task, values in metrics.items():
        for metric, value in values.items():
            row = [task, metric, value]
            if oracle:
                row.append(oracle[task][metric])
            rows.append(row)
    return markdown(header, rows)
