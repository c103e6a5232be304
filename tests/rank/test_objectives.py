"""Ranking objectives against a naive per-group reference (ties included) and a hand-computed
example; objective parsing and relevance checks."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.errors import ConfigError, DataError
from mtlrec.rank.objectives import Objective, RankingEvaluator, parse_objectives, ranking_metrics, relevance


def naive(groups, scores, rel, k):
    """One Python loop per group: sort by score descending, ties by row index."""
    ndcg, recall, sums = [], [], []
    for g in sorted(set(groups.tolist())):
        rows = [i for i in range(len(groups)) if groups[i] == g]
        ranked = sorted(rows, key=lambda i: (-scores[i], i))[:k]
        ideal = sorted((rel[i] for i in rows), reverse=True)[:k]
        dcg = sum(rel[i] / math.log2(r + 2) for r, i in enumerate(ranked))
        idcg = sum(v / math.log2(r + 2) for r, v in enumerate(ideal))
        total = sum(rel[i] for i in rows)
        top = sum(rel[i] for i in ranked)
        sums.append(top)
        if total > 0:
            ndcg.append(dcg / idcg)
            recall.append(top / total)
    return {"ndcg": np.mean(ndcg) if ndcg else math.nan, "recall": np.mean(recall) if recall else math.nan,
            "sum": np.mean(sums)}  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_matches_the_naive_reference_with_ties(seed, k):
    rng = np.random.default_rng(seed)
    n = 300
    groups = rng.choice(np.array(["a", "b", "c", "d", "e", "f", "g"]) if seed % 2 else rng.integers(0, 40, 40), n)
    scores = rng.integers(0, 5, n).astype(float)  # many ties, broken by row order
    click = (rng.random(n) < 0.2).astype(float)
    value = np.where(rng.random(n) < 0.1, rng.gamma(2.0, 20.0, n), 0.0)
    got = ranking_metrics(groups, scores, {"click": click, "value": value}, k)
    for name, rel in (("click", click), ("value", value)):
        want = naive(groups, scores, rel, k)
        assert got[name] == pytest.approx(want, rel=1e-12, nan_ok=True)


def test_hand_computed_example():
    # group 1: scores put the purchase (value 10) second; group 2 has no purchase
    groups = np.array([1, 1, 1, 2, 2])
    scores = np.array([0.9, 0.5, 0.1, 0.3, 0.4])
    value = np.array([0.0, 10.0, 5.0, 0.0, 0.0])
    got = ranking_metrics(groups, scores, {"v": value}, k=2)["v"]
    dcg, idcg = 10 / math.log2(3), 10 + 5 / math.log2(3)
    assert got["ndcg"] == pytest.approx(dcg / idcg)  # group 2 has nothing to find: left out
    assert got["recall"] == pytest.approx(10 / 15)
    assert got["sum"] == pytest.approx((10 + 0) / 2)  # per group, both groups counted
    perfect = ranking_metrics(groups, value, {"v": value}, k=2)["v"]
    assert perfect["ndcg"] == pytest.approx(1.0)


def test_nan_scores_rank_last_and_no_positive_gives_nan():
    groups = np.zeros(3, int)
    got = ranking_metrics(groups, np.array([np.nan, 0.1, 0.2]), {"c": np.array([1.0, 0, 0])}, k=2)["c"]
    assert got["sum"] == 0.0 and got["recall"] == 0.0
    none = ranking_metrics(groups, np.ones(3), {"c": np.zeros(3)}, k=2)["c"]
    assert math.isnan(none["ndcg"]) and math.isnan(none["recall"]) and none["sum"] == 0.0


def test_evaluator_checks_shapes_and_k():
    with pytest.raises(ConfigError, match="--k: expected an integer >= 1"):
        RankingEvaluator(np.zeros(3), {"c": np.zeros(3)}, 0)
    with pytest.raises(DataError, match="relevance 'c': 2 values for 3 rows"):
        RankingEvaluator(np.zeros(3), {"c": np.zeros(2)}, 1)
    with pytest.raises(DataError, match="scores"):
        RankingEvaluator(np.zeros(3), {"c": np.zeros(3)}, 1)(np.zeros(4))


def test_parse_objectives():
    got = parse_objectives("click, purchase:recall,gmv", aliases={"gmv": "order_value"})
    assert got == [Objective("click", "click", "ndcg"), Objective("purchase:recall", "purchase", "recall"),
                   Objective("gmv", "order_value", "sum")]  # fmt: skip
    assert got[1].label(10) == "purchase recall@10" and got[2].label(5) == "gmv sum@5"
    assert parse_objectives("gmv:ndcg", aliases={"gmv": "order_value"})[0].metric == "ndcg"
    for bad, message in [("click:auc", "NAME:METRIC"), (":ndcg", "NAME:METRIC"), ("", "at least one"),
                         ("click,click", "twice")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            parse_objectives(bad)


def test_relevance_reads_missing_as_zero_and_rejects_negatives():
    table = pa.table({"v": pa.array([1.5, None, 2.0]), "bad": pa.array([0.0, 1.0, -3.0]), "t": ["1", "x", "2"]})
    np.testing.assert_array_equal(relevance(table, "v", "log.csv"), [1.5, 0.0, 2.0])
    with pytest.raises(DataError, match=r"column 'bad' in log.csv row 3: expected a relevance >= 0, got -3$"):
        relevance(table, "bad", "log.csv")
    with pytest.raises(DataError, match=r"column 't' in log.csv row 2: expected a number"):
        relevance(table, "t", "log.csv")
    with pytest.raises(DataError, match="log.csv: missing column"):
        relevance(table, "order_value", "log.csv")
