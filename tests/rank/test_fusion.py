"""Fusers against hand-computed scores, the common contract of every registered fuser, the config
section and load_fusion's order (fusion.json, then the config, then pCTR only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from mtlrec.artifacts import write_json
from mtlrec.config import parse_config
from mtlrec.errors import ConfigError
from mtlrec.rank.fusion import FUSERS, build_fuser, default_fuser, fusion_inputs, load_fusion
from mtlrec.spec import TaskSpec

PREDS = {
    "click": np.array([0.1, 0.5, 0.2]),
    "purchase": np.array([0.4, 0.1, 0.0]),
    "order_value": np.array([30.0, 10.0, 50.0]),
}
# one example configuration per registered fuser; a new fuser must add one here
EXAMPLES = {
    "weighted_sum": {"weights": {"click": 1.0, "purchase": 2.0}},
    "product": {"weights": {"click": 1.0, "purchase": 0.5, "order_value": 0.3}},
    "expected_value": {"chain": ["click", "purchase"], "value": "order_value"},
}


def fuse(name, **params):
    return build_fuser({"name": name, name: params})(PREDS)


def test_weighted_sum_by_hand():
    assert fuse("weighted_sum", weights={"click": 1.0, "purchase": 2.0}) == pytest.approx([0.9, 0.7, 0.2])
    assert fuse("weighted_sum", weights={"order_value": -0.5}) == pytest.approx([-15.0, -5.0, -25.0])


def test_product_by_hand_with_a_floor_for_zero():
    got = fuse("product", weights={"click": 1.0, "purchase": 0.5, "order_value": 0.3})
    want = [0.1 * 0.4**0.5 * 30**0.3, 0.5 * 0.1**0.5 * 10**0.3, 0.2 * 1e-6**0.5 * 50**0.3]
    assert got == pytest.approx(want, rel=1e-12)
    assert fuse("product", weights={"click": 2.0}) == pytest.approx([0.01, 0.25, 0.04])
    # exponent 0: the input is ignored, zero included
    assert fuse("product", weights={"click": 1.0, "purchase": 0.0}) == pytest.approx(PREDS["click"])


def test_expected_value_by_hand_and_with_a_column(shop_table):
    assert fuse("expected_value", chain=["click", "purchase"], value="order_value") == pytest.approx([1.2, 0.5, 0.0])
    assert fuse("expected_value", chain=["click"], value=None) == pytest.approx(PREDS["click"])
    # the default value is price, a column of the candidates rather than a task
    table = shop_table.slice(0, 3)
    fuser = build_fuser({"name": "expected_value"})
    values = fusion_inputs(fuser, PREDS, table)
    price = table["price"].to_numpy()
    assert fuser(values) == pytest.approx(PREDS["click"] * PREDS["purchase"] * price)


@pytest.mark.parametrize("name", FUSERS.names())
def test_every_fuser_round_trips_and_reports_bad_inputs(name):
    assert name in EXAMPLES, f"add an example configuration of fuser '{name}' to EXAMPLES"
    fuser = build_fuser({"name": name, name: EXAMPLES[name]})
    scores = fuser(PREDS)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    again = build_fuser(yaml.safe_load(yaml.safe_dump(fuser.to_dict())))  # the JSON/YAML form
    np.testing.assert_allclose(again(PREDS), scores, rtol=1e-12)
    assert fuser.describe() and set(fuser.inputs) <= set(PREDS)
    missing = {k: v for k, v in PREDS.items() if k != fuser.inputs[0]}
    with pytest.raises(ConfigError, match=f"input '{fuser.inputs[0]}' is neither a task prediction nor a column"):
        fuser(missing)
    with pytest.raises(ConfigError, match="one value per item"):
        fuser({**PREDS, fuser.inputs[0]: np.zeros((3, 4))})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "product"}, r"fusion\.product\.weights: required"),
        ({"name": "product", "product": {"weights": {}}}, "at least one input"),
        ({"name": "product", "product": {"weights": {"click": "x"}}}, r"fusion\.product\.weights\.click"),
        ({"name": "product", "product": {"weights": {"click": math.nan}}}, "finite number"),
        ({"name": "product", "product": {"weights": {"click": 1}, "floor": 0}}, "floor"),
        ({"name": "product", "product": {"weights": {"click": 1}, "power": 2}}, r"fusion\.product\.power: unknown"),
        ({"name": "product", "weights": {"click": 1}}, r"fusion\.weights: unknown key"),
        ({"name": "product", "product": 3}, "go in a mapping"),
        ({"name": "sum"}, "unknown fuser 'sum'; expected one of: expected_value, product, weighted_sum"),
        ({"name": "expected_value", "expected_value": {"chain": []}}, "at least one task"),
    ],
)
def test_bad_fusion_configs_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_fuser(spec)


def test_the_config_has_a_fusion_section():
    cfg = parse_config({"fusion": {"name": "weighted_sum", "weighted_sum": {"weights": {"click": 2}}}})
    assert build_fuser(cfg.fusion)(PREDS) == pytest.approx(2 * PREDS["click"])
    assert parse_config({}).fusion is None
    with pytest.raises(ConfigError, match="fusion: unknown key .weights."):
        parse_config({"fusion": {"name": "product", "weights": 3}})


def test_default_fuser_ranks_by_the_top_of_the_funnel():
    tasks = [TaskSpec("value", "regression"), TaskSpec("buy", "binary", where="ctr"), TaskSpec("ctr", "binary")]
    assert default_fuser(tasks).to_dict()["product"]["weights"] == {"ctr": 1.0}
    assert default_fuser(tasks[:2]).inputs == ("value",)
    with pytest.raises(ConfigError, match="no binary or regression task"):
        default_fuser([TaskSpec("seg", "multiclass", n_classes=3)])


def test_load_fusion_prefers_fusion_json_then_the_config_then_pctr(tmp_path):
    schema = {"features": [{"name": "price", "kind": "numeric"}],
              "tasks": [{"name": "click", "kind": "binary"}, {"name": "purchase", "kind": "binary", "where": "click"}]}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"schema": schema}))
    assert load_fusion(tmp_path).to_dict()["product"]["weights"] == {"click": 1.0}

    section = {"name": "weighted_sum", "weighted_sum": {"weights": {"purchase": 1.0}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"schema": schema, "fusion": section}))
    assert load_fusion(tmp_path).inputs == ("purchase",)

    write_json(tmp_path / "fusion.json", {"fuser": {"name": "product", "product": {"weights": {"click": 0.5}}}})
    assert load_fusion(tmp_path).to_dict()["product"]["weights"] == {"click": 0.5}

    write_json(tmp_path / "fusion.json", {"fuser": {"name": "nope"}})
    with pytest.raises(ConfigError, match="unknown fuser 'nope'"):
        load_fusion(tmp_path)
    write_json(tmp_path / "fusion.json", [1])
    with pytest.raises(ConfigError, match=r"fusion\.json: expected an object with a 'fuser' entry"):
        load_fusion(tmp_path)


def test_fusion_inputs_prefer_predictions_and_name_what_is_missing(shop_table):
    table = shop_table.slice(0, 3)
    fuser = build_fuser({"name": "product", "product": {"weights": {"click": 1.0, "price": 1.0}}})
    values = fusion_inputs(fuser, PREDS, table, "candidates")
    np.testing.assert_array_equal(values["click"], PREDS["click"])  # not the click label column
    np.testing.assert_array_equal(values["price"], table["price"].to_numpy())
    with pytest.raises(ConfigError, match="input 'price' is neither a task prediction nor a column of candidates"):
        fusion_inputs(fuser, PREDS, None, "candidates")
