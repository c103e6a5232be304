"""The report of a ``mtlrec compare`` directory, from its compare.csv: the table of each task's test
metric per (model, weighting), mean ± std over the seeds with the lift over single-task, negative
transfer marked, and a chart of the lifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlrec.compare import BASELINE, Cell, read_csv, table
from mtlrec.report import figures
from mtlrec.report.page import Cell as PageCell
from mtlrec.report.page import Figure, Page, Section, Table

CSV = "compare.csv"


def compare_page(out: Path) -> Page:
    """The report page of a compare directory (``out/compare.csv`` and one folder per run)."""
    cells = read_csv(out / CSV)
    configurations = list(dict.fromkeys((c.model, c.weighting) for c in cells))
    tasks = list(dict.fromkeys(c.task for c in cells))
    seeds = sorted({len(c.values) for c in cells})
    facts = [
        ("configurations", f"{len(configurations)} (model + weighting), the single_task baseline included"),
        ("seeds", " / ".join(map(str, seeds)) + " per configuration"),
        ("tasks", ", ".join(f"{c.task} ({c.metric})" for c in cells if (c.model, c.weighting) == configurations[0])),
        ("runs", f"{out.resolve()}/<model>-<weighting>/seed<k> (mtlrec report on one draws its report)"),
    ]
    page = Page(f"mtlrec compare: {out.resolve().name}", facts, [_table(cells)])
    others = [c for c in configurations if c != BASELINE]
    if others:
        page.sections.append(_chart(cells, others, tasks))
    else:
        page.absent.append(("Lift chart", "the directory holds the single_task baseline only"))
    return page


def _table(cells: list[Cell]) -> Section:
    header, rows = table(cells)
    negative: dict[tuple[str, str], list[bool]] = {}
    for c in cells:  # in table()'s order: one row per (model, weighting), one column per task
        negative.setdefault((c.model, c.weighting), []).append(c.negative_transfer)
    body = [[PageCell(row[0]), PageCell(row[1])] + [PageCell(text, "nt" if nt else "num")
                                                    for text, nt in zip(row[2:], flags)]
            for row, flags in zip(rows, negative.values())]  # fmt: skip
    intro = ("Each task's test metric, mean ± std over the seeds, and in brackets the lift over single_task in "
             "percent (positive is better, whichever direction the metric has). NT, in red: negative transfer, "
             "worse than single_task by more than the two standard deviations added.")  # fmt: skip
    return Section("table", "Test metrics against single-task", intro, tables=[Table(header, body)])


def _chart(cells: list[Cell], configurations: list[tuple[str, str]], tasks: list[str]) -> Section:
    index = {(c.model, c.weighting, c.task): c for c in cells}
    shape = (len(configurations), len(tasks))
    lift, threshold, negative = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, bool)
    for i, (model, weighting) in enumerate(configurations):
        for j, task in enumerate(tasks):
            c = index.get((model, weighting, task))
            if c is None:
                continue
            lift[i, j], negative[i, j] = c.lift, c.negative_transfer
            if c.baseline_mean:
                threshold[i, j] = 100.0 * (c.std + c.baseline_std) / abs(c.baseline_mean)
    names = [f"{m} + {w}" for m, w in configurations]
    uri = figures.lift_bars(names, tasks, lift, threshold, negative)
    intro = ("The lift over single_task of each configuration on each task. The whiskers span ± the two standard "
             "deviations added, as a percentage of single_task's mean: a bar whose whisker stays below zero is "
             "negative transfer (red, hatched).")  # fmt: skip
    return Section("lift", "Lift over single-task", intro, [Figure("lift", uri, "lift over single-task by task")])
