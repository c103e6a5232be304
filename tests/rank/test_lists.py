"""Several lists: one request's per-task and fused lists, many requests at once against a per-group
loop, and the long table that predict --lists writes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.errors import ConfigError
from mtlrec.rank.fusion import build_fuser
from mtlrec.rank.lists import FUSED, grouped_lists, lists_table, ranked_lists

PRODUCT = build_fuser({"name": "product", "product": {"weights": {"click": 1.0, "purchase": 1.0}}})


def test_one_request_gets_a_list_per_task_and_the_fused_one():
    preds = {
        "click": np.array([0.1, 0.5, 0.2, 0.5]),
        "purchase": np.array([0.9, 0.1, 0.5, 0.2]),
        "segment": np.full((4, 3), 1 / 3),  # one value per class: not a list
    }
    lists = ranked_lists(preds, PRODUCT, k=3)
    assert list(lists) == ["click", "purchase", FUSED]
    assert lists["click"].index.tolist() == [1, 3, 2]  # the tie (rows 1 and 3) keeps candidate order
    assert lists["purchase"].index.tolist() == [0, 2, 3]
    assert lists[FUSED].index.tolist() == [2, 3, 0]  # scores 0.09, 0.05, 0.10, 0.10
    np.testing.assert_allclose(lists[FUSED].score, [0.1, 0.1, 0.09])


def test_lists_without_a_fuser_and_bad_task_names():
    preds = {"click": np.array([0.3, 0.1]), "segment": np.ones((2, 3))}
    assert list(ranked_lists(preds)) == ["click"]
    with pytest.raises(ConfigError, match="lists: unknown task 'ctr'; expected one of: click, segment"):
        ranked_lists(preds, tasks=["ctr"])
    with pytest.raises(ConfigError, match="task 'segment' has one value per class"):
        ranked_lists(preds, tasks=["segment"])
    with pytest.raises(ConfigError, match="a task is named 'fused'"):
        ranked_lists({"fused": np.ones(2), "click": np.ones(2), "purchase": np.ones(2)}, PRODUCT)


@pytest.mark.parametrize("k", [None, 1, 3])
def test_many_requests_match_one_request_at_a_time(k):
    rng = np.random.default_rng(0)
    n = 200
    groups = rng.integers(100, 130, n)
    preds = {"click": rng.integers(0, 4, n) / 4.0, "purchase": rng.random(n)}  # click has ties
    got = grouped_lists(groups, preds, PRODUCT, k=k)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        want = ranked_lists({t: p[rows] for t, p in preds.items()}, PRODUCT, k=k)
        for name, lst in got.items():
            mine = lst.group == g
            assert lst.index[mine].tolist() == rows[want[name].index].tolist()
            assert lst.rank[mine].tolist() == list(range(1, len(want[name].index) + 1))
            np.testing.assert_allclose(lst.score[mine], want[name].score)
    assert (np.diff(got[FUSED].group) >= 0).all()
    with pytest.raises(ConfigError, match="k must be >= 1"):
        grouped_lists(groups, preds, PRODUCT, k=0)


def test_lists_table_has_one_row_per_request_list_and_rank():
    table = pa.table({"request": ["b", "a", "b", "a", "b"], "item": [10, 11, 12, 13, 14], "price": [1.0, 2, 3, 4, 5]})
    preds = {"click": np.array([0.1, 0.2, 0.3, 0.4, 0.5]), "purchase": np.array([0.5, 0.5, 0.5, 0.1, 0.1])}
    lists = grouped_lists(table["request"].to_numpy(), preds, PRODUCT, k=2)
    out = lists_table(lists, table, group="request", item_id="item", keep=["price", "item"])
    assert out.column_names == ["request", "list", "rank", "item", "score", "price"]
    rows = list(zip(*(out[c].to_pylist() for c in ("request", "list", "rank", "item"))))
    assert rows == [
        ("a", "click", 1, 13), ("a", "click", 2, 11), ("a", "purchase", 1, 11), ("a", "purchase", 2, 13),
        ("a", "fused", 1, 11), ("a", "fused", 2, 13),  # 0.10 vs 0.04
        ("b", "click", 1, 14), ("b", "click", 2, 12), ("b", "purchase", 1, 10), ("b", "purchase", 2, 12),
        ("b", "fused", 1, 12), ("b", "fused", 2, 10),  # 0.15, then a tie at 0.05: the earlier row
    ]  # fmt: skip
    assert out["price"].to_pylist()[:2] == [4.0, 2.0]


def test_minus_infinity_ranks_above_nan():
    """An overflowing fusion can give -inf; it is still a score, so it ranks before NaN (no score)."""
    preds = {"click": np.array([-np.inf, np.nan, 0.5, -np.inf, np.nan, 0.9])}
    assert ranked_lists(preds)["click"].index.tolist() == [5, 2, 0, 3, 1, 4]
    lists = grouped_lists(np.array([0, 0, 0, 1, 1, 1]), preds)["click"]
    assert lists.index.tolist() == [2, 0, 1, 5, 3, 4] and lists.rank.tolist() == [1, 2, 3, 1, 2, 3]
