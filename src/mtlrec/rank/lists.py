"""Several recommendation lists from one set of predictions: one ranked list per task (by pCTR, by
pCVR, by predicted value, ...) plus the fused list.

One request (``ranked_lists``): candidates are the rows of ``preds``; each list holds row indices,
best first. Many requests at once (``grouped_lists``): rows are grouped by a column such as
``request_id`` and ranked within their group in one vectorised sort.

    preds = predictor.predict(candidates)                      # {task: [N]}
    lists = ranked_lists(preds, load_fusion(run_dir), table=candidates, k=10)
    lists["fused"].index, lists["click"].score
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mtlrec.errors import ConfigError
from mtlrec.rank.fusion import Fuser, fusion_inputs
from mtlrec.rank.groups import Groups, descending

FUSED = "fused"


@dataclass(frozen=True)
class RankedList:
    """One ranked list of one request: ``index`` [k] rows of the candidates, best first, and
    their ``score`` [k]."""

    name: str
    index: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class GroupedList:
    """One ranked list per group: rows sorted by group value, then rank. ``group`` [M] the group
    value, ``rank`` [M] 1-based, ``index`` [M] row of the input, ``score`` [M]."""

    name: str
    group: np.ndarray
    rank: np.ndarray
    index: np.ndarray
    score: np.ndarray


def list_scores(
    preds: Mapping[str, np.ndarray],
    fuser: Fuser | None = None,
    *,
    table: Any = None,
    tasks: Sequence[str] | None = None,
    where: str = "data",
) -> dict[str, np.ndarray]:
    """``{list name: [N] scores}``: each task in ``tasks`` (default: every prediction with one
    value per row, i.e. binary and regression tasks) and, with a fuser, ``"fused"`` last."""
    names = [t for t in preds if np.ndim(preds[t]) == 1] if tasks is None else list(tasks)
    for name in names:
        if name not in preds:
            raise ConfigError(f"lists: unknown task '{name}'; expected one of: {', '.join(preds)}")
        if np.ndim(preds[name]) != 1:
            raise ConfigError(f"lists: task '{name}' has one value per class, not one per item; it cannot rank items")
    if FUSED in names and fuser is not None:
        raise ConfigError(f"lists: a task is named '{FUSED}', the name of the fused list")
    scores = {name: np.asarray(preds[name], dtype=np.float64) for name in names}
    if fuser is not None:
        scores[FUSED] = fuser(fusion_inputs(fuser, preds, table, where))
    return scores


def ranked_lists(
    preds: Mapping[str, np.ndarray],
    fuser: Fuser | None = None,
    *,
    table: Any = None,
    tasks: Sequence[str] | None = None,
    k: int | None = None,
    where: str = "candidates",
) -> dict[str, RankedList]:
    """The lists of one request whose candidates are the rows of ``preds`` (and ``table``, which
    provides non-task fuser inputs such as price). Ties keep the candidates' order."""
    out = {}
    for name, score in list_scores(preds, fuser, table=table, tasks=tasks, where=where).items():
        index = np.lexsort(descending(score))[:k]  # stable: ties keep the candidates' order
        out[name] = RankedList(name, index, score[index])
    return out


def grouped_lists(
    groups: np.ndarray,
    preds: Mapping[str, np.ndarray],
    fuser: Fuser | None = None,
    *,
    table: Any = None,
    tasks: Sequence[str] | None = None,
    k: int | None = None,
    where: str = "data",
) -> dict[str, GroupedList]:
    """The lists of many requests at once: row ``i`` is a candidate of request ``groups[i]``;
    each list keeps the top ``k`` of every request (all with ``k=None``)."""
    if k is not None and k < 1:
        raise ConfigError(f"lists: k must be >= 1, got {k}")
    g = Groups.of(groups)
    out = {}
    for name, score in list_scores(preds, fuser, table=table, tasks=tasks, where=where).items():
        order, rank = g.rank(score)
        keep = rank < k if k is not None else np.ones(len(rank), bool)
        index = order[keep]
        out[name] = GroupedList(name, g.values[g.codes[index]], rank[keep] + 1, index, score[index])
    return out


def lists_table(
    lists: Mapping[str, GroupedList], table: Any, *, group: str, item_id: str, keep: Sequence[str] = ()
) -> Any:
    """A pyarrow table with one row per (group, list, rank): ``group``, ``list``, ``rank``,
    ``item_id``, ``score`` and the ``keep`` columns of the candidate's row; sorted by group, then
    list (in the order of ``lists``), then rank."""
    import pyarrow as pa

    parts = list(lists.values())
    index = np.concatenate([p.index for p in parts])
    which = np.concatenate([np.full(len(p.index), i) for i, p in enumerate(parts)])
    rank = np.concatenate([p.rank for p in parts])
    groups = Groups.of(np.concatenate([p.group for p in parts]))
    order = np.lexsort((rank, which, groups.codes))
    rows = pa.array(index[order])
    columns = {
        group: table[group].take(rows),
        "list": pa.array(np.array([p.name for p in parts], dtype=object)[which[order]], pa.string()),
        "rank": pa.array(rank[order], pa.int64()),
        item_id: table[item_id].take(rows),
        "score": pa.array(np.concatenate([p.score for p in parts])[order], pa.float64()),
    }
    columns.update({c: table[c].take(rows) for c in keep if c not in columns})
    return pa.table(columns)
