"""The Pareto filter against brute force, the selection rule (parsing, malformed rules, choice),
the seeded search, and a whole study on the simulator's true probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from mtlrec.data.synthetic import simulate
from mtlrec.errors import ConfigError
from mtlrec.rank.frontier import Rule, pareto_mask, search
from mtlrec.rank.objectives import parse_objectives
from mtlrec.rank.study import frontier_study


def brute_force(values):
    keep = []
    for i, a in enumerate(values):
        dominated = any(all(b >= a) and any(b > a) for j, b in enumerate(values) if j != i)
        keep.append(not dominated)
    return np.array(keep)


@pytest.mark.parametrize("seed", range(8))
def test_pareto_mask_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    m = 1 + seed % 4
    values = rng.integers(0, 6, (300 if seed == 0 else 60, m)).astype(float)  # many equal and tied points
    np.testing.assert_array_equal(pareto_mask(values), brute_force(values))


def test_pareto_mask_small_cases():
    np.testing.assert_array_equal(pareto_mask(np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0], [2.0, 1.0]])),
                                  [True, True, False, True])  # fmt: skip
    assert pareto_mask(np.array([[np.nan, 5.0], [0.0, 5.0]])).tolist() == [False, True]
    with pytest.raises(ValueError, match=r"\[n, m\]"):
        pareto_mask(np.zeros(3))


OBJ = ["click", "purchase", "gmv"]


def test_rule_parsing():
    rule = Rule.parse("gmv", ["click>=0.98", " purchase >= 1e-1 ,click>=.9"], OBJ)
    assert rule == Rule("gmv", (("click", 0.98), ("purchase", 0.1), ("click", 0.9)))
    assert str(Rule.parse("gmv", [], OBJ)) == "maximize gmv"


@pytest.mark.parametrize(
    "maximize, keep, message",
    [
        ("revenue", [], "--maximize 'revenue': not an objective; expected one of click, purchase, gmv"),
        ("gmv", ["click>0.98"], r"--keep 'click>0.98': expected OBJECTIVE>=RATIO"),
        ("gmv", ["click<=0.98"], "expected OBJECTIVE>=RATIO"),
        ("gmv", ["click>=98%"], "expected OBJECTIVE>=RATIO"),
        ("gmv", ["click>="], "expected OBJECTIVE>=RATIO"),
        ("gmv", ["click"], "expected OBJECTIVE>=RATIO"),
        ("gmv", [">=0.9"], "expected OBJECTIVE>=RATIO"),
        ("gmv", ["ctr>=0.9"], "'ctr' is not an objective"),
    ],
)
def test_malformed_rules_are_errors(maximize, keep, message):
    with pytest.raises(ConfigError, match=message):
        Rule.parse(maximize, keep, OBJ)


def test_choose_keeps_the_thresholds_relative_to_the_baseline():
    baseline = np.array([1.0, 1.0, 10.0])
    values = np.array([[1.0, 1.0, 10.0], [0.99, 1.0, 11.0], [0.95, 1.2, 14.0], [0.97, 0.9, 12.0], [1.0, 1.0, 20.0]])
    candidates = np.array([True, True, True, True, False])  # the best gmv is not a candidate
    assert Rule.parse("gmv", [], OBJ).choose(values, baseline, OBJ, candidates) == 2
    assert Rule.parse("gmv", ["click>=0.98"], OBJ).choose(values, baseline, OBJ, candidates) == 1
    assert Rule.parse("gmv", ["click>=0.96", "purchase>=1"], OBJ).choose(values, baseline, OBJ, candidates) == 1
    assert Rule.parse("purchase", [], OBJ).choose(values, baseline, OBJ, candidates) == 2
    with pytest.raises(ConfigError, match="no Pareto-optimal setting meets maximize gmv keeping click >= 1.1 x baseline"):
        Rule.parse("gmv", ["click>=1.1"], OBJ).choose(values, baseline, OBJ, candidates)


def test_search_is_seeded_and_starts_from_equal_weights():
    def evaluate(fuser):
        w = fuser.weights
        return (w["a"] - w["b"], w["b"] - 0.5 * w["a"]), {}

    first = search("product", ["a", "b"], evaluate, 2, trials=12, seed=3)
    again = search("product", ["a", "b"], evaluate, 2, trials=12, seed=3)
    other = search("product", ["a", "b"], evaluate, 2, trials=12, seed=4)
    assert [s.fuser.weights for s in first] == [s.fuser.weights for s in again]
    assert [s.fuser.weights for s in first] != [s.fuser.weights for s in other]
    assert len(first) == 12 and first[0].fuser.weights == {"a": 1.0, "b": 1.0}
    assert all(1e-3 <= w <= 2.0 for s in first for w in s.fuser.weights.values())
    assert first[5].values == evaluate(first[5].fuser)[0]
    # the anchor keeps weight 1 (the scale), the others move
    anchored = search("weighted_sum", ["a", "b"], evaluate, 2, trials=6, seed=0, sampler="nsga2", anchor="a")
    assert all(s.fuser.weights["a"] == 1.0 and 1e-4 <= s.fuser.weights["b"] <= 10.0 for s in anchored)
    assert len({s.fuser.weights["b"] for s in anchored}) == 6
    with pytest.raises(ConfigError, match="the anchor 'c' is not one of a, b"):
        search("product", ["a", "b"], evaluate, 2, trials=2, anchor="c")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fuser_name": "expected_value"}, "has no weights to search; expected one of product, weighted_sum"),
        ({"fuser_name": "nope"}, "unknown fuser 'nope'"),
        ({"trials": 0}, "--trials: expected an integer >= 1"),
        ({"sampler": "grid"}, "--sampler 'grid': expected one of tpe, nsga2, random"),
        ({"inputs": []}, "--inputs: expected at least one"),
    ],
)
def test_search_argument_errors(kwargs, message):
    args = {"fuser_name": "product", "inputs": ["a"], "trials": 2, "sampler": "tpe", **kwargs}
    with pytest.raises(ConfigError, match=message):
        search(args["fuser_name"], args["inputs"], lambda f: ((0.0,), {}), 1, trials=args["trials"],
               sampler=args["sampler"])  # fmt: skip


def test_on_true_probabilities_the_chosen_fusion_beats_pctr_on_gmv():
    """With the simulator's own probabilities as predictions, a fusion that keeps 95 % of click
    NDCG@10 must find clearly more order value in users' top 10 than ranking by pCTR alone."""
    table = simulate(rows=6000, users=100, items=300, seed=1)  # ~60 impressions per user
    preds = {t: table[f"oracle_{t}"].to_numpy() for t in ("click", "purchase", "order_value")}
    objectives = parse_objectives("click,purchase,gmv", aliases={"gmv": "order_value"})
    rule = Rule.parse("gmv", ["click>=0.95"], [o.key for o in objectives])
    result = frontier_study(preds, table, fuser="product", inputs=list(preds), baseline="click",
                            objectives=objectives, rule=rule, group="user_id", k=10, trials=30, seed=0)  # fmt: skip
    gmv = result.values[:, 2]
    assert result.chosen != 0 and result.pareto[result.chosen]
    assert gmv[result.chosen] > 1.1 * gmv[0]  # measured: 1.31x here; 1.14x to 1.31x for data seeds 0 to 3
    assert result.values[result.chosen, 0] >= 0.95 * result.values[0, 0]
    assert gmv[result.chosen] == gmv[rule.feasible(result.values, result.values[0], ["click", "purchase", "gmv"])
                                     & result.pareto].max()  # fmt: skip
    header, rows = result.table()
    assert header[:2] == ["setting", "role"] and sum(r[1] == "chosen" for r in rows) == 1
    record = result.record(group="user_id")
    assert record["fuser"] == result.settings[result.chosen].fuser.to_dict()
    assert record["objectives"]["gmv"]["value"] == pytest.approx(gmv[result.chosen])
