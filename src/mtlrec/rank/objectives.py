"""Offline ranking objectives on logged data grouped by request (a request, session or user id).

Rows are the items shown; a ranking sorts each group's rows by score (ties: the earlier row first)
and keeps the top ``k``. For each relevance column (click, purchase: 0/1; order_value: money):

  ndcg    DCG@k / ideal DCG@k, linear gain ``rel / log2(rank + 2)`` (rank 0-based), averaged over the
          groups with some relevance (a group without clicks cannot be ranked well or badly)
  recall  the share of the group's relevance in the top k, averaged over the same groups
  sum     the relevance in the top k, averaged over all groups (order value: GMV@k per request;
          clicks: clicks in the top k per request)

Everything is vectorised: one lexsort per scoring, ``bincount`` per group; the ideal DCG and the
totals are computed once per relevance column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from mtlrec.errors import ConfigError, DataError
from mtlrec.rank.groups import Groups

METRICS = ("ndcg", "recall", "sum")


@dataclass(frozen=True)
class Objective:
    """A business objective as written on the command line (``key``: ``gmv`` or ``click:recall``):
    the relevance ``column`` it reads and the ``metric`` of it that is optimised."""

    key: str
    column: str
    metric: str

    def label(self, k: int) -> str:
        return f"{self.key.partition(':')[0]} {self.metric}@{k}"


def parse_objectives(text: str, *, aliases: Mapping[str, str] | None = None) -> list[Objective]:
    """``"click,purchase,gmv"`` -> objectives. ``name`` or ``name:metric`` (metric: ndcg, recall or
    sum); ``name`` is a relevance column or an alias (``gmv`` -> ``order_value``). Default metric:
    ``sum`` for an alias of a value column such as gmv, ``ndcg`` otherwise."""
    aliases = dict(aliases or {})
    out: list[Objective] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        name, _, metric = token.partition(":")
        column = aliases.get(name, name)
        metric = metric or ("sum" if name in aliases else "ndcg")
        if not name or metric not in METRICS:
            raise ConfigError(
                f"--objectives '{token}': expected NAME or NAME:METRIC with METRIC one of {', '.join(METRICS)}"
            )
        if any(o.key == token for o in out):
            raise ConfigError(f"--objectives: '{token}' is given twice")
        out.append(Objective(token, column, metric))
    if not out:
        raise ConfigError("--objectives: expected at least one, e.g. click,purchase,gmv")
    return out


def relevance(table: Any, column: str, where: str) -> np.ndarray:
    """A relevance column of a pyarrow table as float64: missing -> 0 (no purchase, no value);
    negative values are an error naming the row."""
    from mtlrec.data.columns import as_float, bad_value, require_columns

    require_columns(table, [column], where)
    values = np.nan_to_num(as_float(table[column], column, where), nan=0.0)
    bad = np.flatnonzero(values < 0)
    if len(bad):
        raise bad_value(where, column, int(bad[0]), "a relevance >= 0", values[bad[0]])
    return values


class RankingEvaluator:
    """Scores -> ``{column: {"ndcg": .., "recall": .., "sum": ..}}`` at ``k`` for fixed groups and
    relevance columns."""

    def __init__(self, groups: np.ndarray, relevance: Mapping[str, np.ndarray], k: int) -> None:
        if k < 1:
            raise ConfigError(f"--k: expected an integer >= 1, got {k}")
        self.groups = Groups.of(groups)
        self.k = k
        self.relevance = {name: np.asarray(r, dtype=np.float64) for name, r in relevance.items()}
        for name, r in self.relevance.items():
            if r.shape != self.groups.codes.shape:
                raise DataError(f"relevance '{name}': {r.shape[0]} values for {self.groups.codes.size} rows")
        codes, n = self.groups.codes, self.groups.n
        self.total = {name: np.bincount(codes, weights=r, minlength=n) for name, r in self.relevance.items()}
        self.ideal = {name: self._sums(self._top(r), r)[0] for name, r in self.relevance.items()}

    def _top(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, their group codes, their discounts 1 / log2(rank + 2)) of every group's top k."""
        order, rank = self.groups.rank(scores)
        top = rank < self.k
        rows = order[top]
        return rows, self.groups.codes[rows], 1.0 / np.log2(rank[top] + 2.0)

    def _sums(self, top: tuple[np.ndarray, np.ndarray, np.ndarray], rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[G] DCG@k and [G] relevance in the top k."""
        rows, codes, discount = top
        r = rel[rows]
        n = self.groups.n
        return np.bincount(codes, weights=r * discount, minlength=n), np.bincount(codes, weights=r, minlength=n)

    def __call__(self, scores: np.ndarray) -> dict[str, dict[str, float]]:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != self.groups.codes.shape:
            raise DataError(f"scores: {scores.shape} for {self.groups.codes.size} rows")
        top = self._top(scores)
        out = {}
        for name, rel in self.relevance.items():
            dcg, hits = self._sums(top, rel)
            some = self.total[name] > 0
            out[name] = {
                "ndcg": float(np.mean(dcg[some] / self.ideal[name][some])) if some.any() else float("nan"),
                "recall": float(np.mean(hits[some] / self.total[name][some])) if some.any() else float("nan"),
                "sum": float(hits.mean()),
            }
        return out


def ranking_metrics(
    groups: np.ndarray, scores: np.ndarray, relevance: Mapping[str, np.ndarray], k: int
) -> dict[str, dict[str, float]]:
    """One-off form of ``RankingEvaluator(groups, relevance, k)(scores)``."""
    return RankingEvaluator(groups, relevance, k)(scores)
