"""One frontier study: predictions and logged labels -> every fusion setting tried, the Pareto
frontier, the chosen setting, and their tables (what ``mtlrec frontier`` prints and writes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mtlrec.errors import DataError
from mtlrec.rank.frontier import Rule, Setting, check_searchable, pareto_mask, search
from mtlrec.rank.fusion import FUSERS, fusion_inputs
from mtlrec.rank.objectives import METRICS, Objective, RankingEvaluator, relevance


@dataclass
class FrontierResult:
    """``settings[0]`` is the baseline; ``values`` [n, m] their objectives; ``pareto`` [n] bool."""

    objectives: list[Objective]
    rule: Rule
    k: int
    settings: list[Setting]
    values: np.ndarray
    pareto: np.ndarray
    chosen: int
    inputs: list[str]
    groups: int
    seconds: float

    @property
    def labels(self) -> list[str]:
        return [o.label(self.k) for o in self.objectives]

    def ratio(self, i: int, j: int) -> float:
        base = self.values[0, j]
        return float(self.values[i, j] / base) if base else float("nan")

    def role(self, i: int) -> str:
        return "chosen" if i == self.chosen else "baseline" if i == 0 else "frontier" if self.pareto[i] else "dominated"

    @property
    def maximized(self) -> int:
        """The column of the objective the rule maximises."""
        return [o.key for o in self.objectives].index(self.rule.maximize)

    def frontier(self) -> list[int]:
        """The baseline and the Pareto-optimal settings, best ``maximize`` objective first."""
        rows = [0] + [int(i) for i in np.flatnonzero(self.pareto) if i != 0]
        return sorted(rows, key=lambda i: (-self.values[i, self.maximized], i))

    def shortlist(self, n: int) -> list[int]:
        """At most ``n`` rows of ``frontier()`` (n >= 2 + objectives): the baseline, the chosen
        setting, the best on each objective, then evenly spaced others; in the same order."""
        rows = self.frontier()
        if len(rows) <= n:
            return rows
        picked = {0, self.chosen}
        picked |= {max(rows, key=lambda i: (self.values[i, j], -i)) for j in range(self.values.shape[1])}
        rest = [i for i in rows if i not in picked]
        spaced = np.linspace(0, len(rest) - 1, max(n - len(picked), 0)).round().astype(int) if rest else []
        picked |= {rest[p] for p in spaced}
        return [i for i in rows if i in picked]

    def table(self, max_rows: int | None = None) -> tuple[list[str], list[list[Any]]]:
        """Short form for the terminal: weights, objectives, and the maximised one vs the baseline."""
        j = self.maximized
        header = ["setting", "role", *[f"w {n}" for n in self.inputs], *self.labels, f"{self.rule.maximize} vs baseline"]
        rows = []
        for i in self.frontier() if max_rows is None else self.shortlist(max_rows):
            weights = [self.settings[i].fuser.weights.get(n, 0.0) for n in self.inputs]
            rows.append([self.settings[i].label, self.role(i), *weights, *self.values[i],
                         f"{100 * (self.ratio(i, j) - 1):+.2f} %"])  # fmt: skip
        return header, rows

    def csv_table(self) -> tuple[list[str], list[list[Any]]]:
        """Every metric (ndcg, recall, sum of each relevance column) of the frontier's settings."""
        columns = list(dict.fromkeys(o.column for o in self.objectives))
        header = ["setting", "role", *[f"w_{n}" for n in self.inputs], *[o.key for o in self.objectives]]
        header += [f"{c}_{m}@{self.k}" for c in columns for m in METRICS]
        rows = []
        for i in self.frontier():
            s = self.settings[i]
            rows.append([s.label, self.role(i), *[s.fuser.weights.get(n, 0.0) for n in self.inputs], *self.values[i]]
                        + [s.metrics[c][m] for c in columns for m in METRICS])  # fmt: skip
        return header, rows

    def record(self, **context: Any) -> dict[str, Any]:
        """fusion.json: the chosen fuser (what ``load_fusion`` reads), the rule, its objectives next
        to the baseline's, and ``context`` (data, group, trials, ...)."""
        chosen, base = self.settings[self.chosen], self.settings[0]
        return {
            "fuser": chosen.fuser.to_dict(),
            "rule": str(self.rule),
            "k": self.k,
            **context,
            "objectives": {o.key: {"column": o.column, "metric": o.metric, "value": float(self.values[self.chosen, j]),
                                   "baseline": float(self.values[0, j])}
                           for j, o in enumerate(self.objectives)},  # fmt: skip
            "metrics": chosen.metrics,
            "baseline": {"fuser": base.fuser.to_dict(), "metrics": base.metrics},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


def group_column(table: Any, column: str, where: str) -> np.ndarray:
    from mtlrec.data.columns import require_columns

    require_columns(table, [column], f"{where} (group column)")
    col = table[column]
    if col.null_count:
        first = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise DataError(f"column '{column}' in {where} row {first + 1}: expected a group id, got a missing value")
    return col.to_numpy()


def frontier_study(
    preds: Mapping[str, np.ndarray],
    table: Any,
    *,
    fuser: str,
    inputs: Sequence[str],
    baseline: str,
    objectives: list[Objective],
    rule: Rule,
    group: str,
    k: int = 10,
    trials: int = 100,
    seed: int = 0,
    sampler: str = "tpe",
    where: str = "data",
    advance: Callable[[int], None] | None = None,
) -> FrontierResult:
    """Search ``fuser``'s weights over ``inputs`` (task predictions or numeric columns of
    ``table``) against ``objectives`` on ``table``'s logged labels grouped by ``group``; the
    baseline ranks by ``baseline`` alone. ``advance(1)`` is told of each setting scored (the
    baseline, then each of the ``trials``)."""
    start = time.perf_counter()
    check_searchable(fuser)
    cls = FUSERS.get(fuser)
    names = list(dict.fromkeys([*inputs, baseline]))
    values = fusion_inputs(cls(weights=dict.fromkeys(names, 1.0)), preds, table, where)
    rel = {o.column: relevance(table, o.column, where) for o in objectives}
    evaluator = RankingEvaluator(group_column(table, group, where), rel, k)

    def evaluate(f):
        metrics = evaluator(f(values))
        if advance is not None:
            advance(1)
        return tuple(metrics[o.column][o.metric] for o in objectives), metrics

    base = cls(weights={baseline: 1.0})
    settings = [Setting(f"{baseline} only", base, *evaluate(base))]
    settings += search(fuser, list(inputs), evaluate, len(objectives), trials=trials, seed=seed, sampler=sampler,
                       anchor=baseline if baseline in inputs else None)  # fmt: skip
    matrix = np.array([s.values for s in settings], dtype=np.float64)
    pareto = pareto_mask(matrix)
    chosen = rule.choose(matrix, matrix[0], [o.key for o in objectives], pareto)
    return FrontierResult(objectives, rule, k, settings, matrix, pareto, chosen, names, evaluator.groups.n,
                          time.perf_counter() - start)  # fmt: skip


def largest_group(table: Any, column: str, where: str) -> int:
    """Rows in the biggest group (a top k at least this long is the whole group: nothing to rank)."""
    from mtlrec.rank.groups import Groups

    return int(Groups.of(group_column(table, column, where)).sizes.max())


def write_csv(path: Any, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A CSV file with a header row, written atomically."""
    import csv
    import io

    from mtlrec.artifacts import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())
