"""ESMM and AITM: the funnel read from the sample spaces, the joint output and its labels, the
sample spaces of evaluation, and AITM's calibrator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mtlrec.config import ExperimentConfig
from mtlrec.errors import ConfigError
from mtlrec.evaluation import evaluate_model
from mtlrec.models import build_model
from mtlrec.models._chain import logit_of, task_chain
from mtlrec.models.aitm import calibration_penalty
from mtlrec.spec import TaskSpec
from mtlrec.train.trainer import training_losses

FUNNEL = ["esmm", "aitm"]


def build(name, shop, **section):
    schema, layout, _ = shop
    raw = {"name": name, "embedding_dim": 4, "tower_dims": [8], name: {"bottom_dims": [8], **section}}
    return build_model(ExperimentConfig.model_validate({"model": raw}).model, layout, schema.tasks)


def test_the_funnel_comes_from_the_sample_spaces(shop):
    schema = shop[0]
    # add_to_cart and purchase are both `where: click`: the later task in the schema wins
    assert [t.name for t in task_chain(schema.tasks, (), "m")] == ["click", "purchase"]
    assert [t.name for t in task_chain(schema.tasks, ("click", "add_to_cart"), "m")] == ["click", "add_to_cart"]
    deep = (TaskSpec("click", "binary"), TaskSpec("cart", "binary", where="click"), TaskSpec("buy", "binary", where="cart"),
            TaskSpec("fav", "binary", where="click"))  # fmt: skip
    assert [t.name for t in task_chain(deep, (), "m")] == ["click", "cart", "buy"]


@pytest.mark.parametrize(
    "tasks, chain, message",
    [
        ((TaskSpec("click", "binary"), TaskSpec("buy", "binary")), (), r"model\.esmm: needs a funnel"),
        ((TaskSpec("click", "binary"), TaskSpec("buy", "binary", where="click")), ("click", "nope"),
         r"model\.esmm\.chain: 'nope' is not a binary task"),
        ((TaskSpec("click", "binary"), TaskSpec("buy", "binary")), ("click", "buy"),
         r"model\.esmm\.chain: 'buy' follows 'click'.*where: click"),
        ((TaskSpec("click", "binary"),), ("click",), r"two or more"),
    ],
)  # fmt: skip
def test_a_missing_or_wrong_funnel_is_a_config_error(tasks, chain, message):
    with pytest.raises(ConfigError, match=message):
        task_chain(tasks, chain, "model.esmm")


def test_esmm_builds_from_the_synthetic_schema_without_settings(shop):
    model = build("esmm", shop)
    assert [d.spec.name for d in model.derived] == ["click_and_purchase"]
    assert model.derived[0].of == ("click", "purchase")
    loss_names = [t.name for t in model.loss_tasks]
    assert "purchase" not in loss_names and {"click", "click_and_purchase", "add_to_cart"} <= set(loss_names)
    assert "purchase" in [t.name for t in build("esmm", shop, conditional_loss=True).loss_tasks]


def test_esmm_ctcvr_is_the_product_of_ctr_and_cvr(shop):
    model = build("esmm", shop)
    out = model(shop[2].take(slice(0, 512)))
    product = torch.sigmoid(out["click"]) * torch.sigmoid(out["purchase"])
    torch.testing.assert_close(torch.sigmoid(out["click_and_purchase"]), product, rtol=1e-5, atol=1e-6)


def test_logit_of_is_stable_at_both_ends():
    p = torch.tensor([1e-30, 1e-6, 0.3, 0.5, 0.9, 1 - 1e-6, 1.0], dtype=torch.float64)
    got = logit_of(torch.log(p).float())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[1:5].double(), torch.logit(p[1:5]), rtol=1e-4, atol=1e-4)
    x = torch.tensor([-3.0, 0.5], requires_grad=True)
    logit_of(torch.nn.functional.logsigmoid(x)).sum().backward()  # log sigmoid -> logit is the identity
    torch.testing.assert_close(x.grad, torch.ones(2))


@pytest.mark.parametrize("name", FUNNEL)
def test_joint_labels_and_sample_spaces(name, shop):
    model, data = build(name, shop), shop[2]
    full = model.with_derived(data)
    click, purchase = data.labels["click"], data.labels["purchase"]
    assert torch.equal(full.labels["click_and_purchase"], click * purchase)
    assert full.masks["click_and_purchase"].all()  # pCTCVR: on every impression
    assert torch.equal(full.masks["purchase"], click.bool())  # pCVR: on clicked rows
    assert set(data.labels) == {t.name for t in model.tasks}  # the input is left as it was


@pytest.mark.parametrize("name", FUNNEL)
def test_evaluation_uses_each_output_s_sample_space(name, shop):
    model, data = build(name, shop), shop[2]
    rng = np.random.default_rng(0)
    preds = {t.name: rng.random(len(data)) for t in model.tasks if t.out_dim == 1}
    preds |= {t.name: rng.random((len(data), t.out_dim)) for t in model.tasks if t.out_dim > 1}
    metrics = evaluate_model(model, preds, data)  # the joint output is completed as a product
    click, purchase = data.labels["click"].numpy(), data.labels["purchase"].numpy()
    clicked = click == 1
    assert metrics["purchase"]["auc"] == pytest.approx(roc_auc_score(purchase[clicked], preds["purchase"][clicked]))
    joint = preds["click"] * preds["purchase"]
    assert metrics["click_and_purchase"]["auc"] == pytest.approx(roc_auc_score(click * purchase, joint))


def test_aitm_calibrator_is_zero_when_the_funnel_is_monotone():
    mask = torch.ones(4, dtype=torch.bool)
    click = torch.tensor([2.0, 0.0, -1.0, -3.0])
    assert calibration_penalty([click, click - 0.5, click - 2.0], mask) == [0, 0]
    assert calibration_penalty([click, click], mask) == [0]  # equal probabilities: no penalty either
    later = torch.tensor([1.0, 1.0, -1.0, -4.0])  # only row 1 is likelier than its click
    (penalty,) = calibration_penalty([click, later], mask)
    want = (torch.sigmoid(later) - torch.sigmoid(click)).clamp_min(0).mean()
    torch.testing.assert_close(penalty, want)
    assert penalty > 0
    (masked,) = calibration_penalty([click, later], torch.tensor([True, False, True, True]))
    assert masked == 0  # the only violation is outside the sample space


def test_aitm_calibrator_counts_rows_in_float32_under_bfloat16():
    """Every row violates the funnel by the same amount, so the mean is that amount exactly; a
    bf16 row count (1001 -> 1000) or a bf16 sum would be off by about 0.1%."""
    n = 1001
    click = torch.full((n,), -1.0, dtype=torch.bfloat16)
    later = torch.full((n,), 1.0, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (penalty,) = calibration_penalty([click, later], torch.ones(n, dtype=torch.bool))
    want = float(torch.sigmoid(torch.tensor(1.0)) - torch.sigmoid(torch.tensor(-1.0)))
    assert float(penalty) == pytest.approx(want, rel=1e-6)
    assert penalty.dtype == torch.float32


def test_aitm_outputs_and_calibrator_hook(shop):
    model = build("aitm", shop, calibration=0.5)
    batch = shop[2].take(slice(0, 512))
    out = model(batch)
    p_click, p_joint = torch.sigmoid(out["click"]), torch.sigmoid(out["click_and_purchase"])
    ratio = torch.sigmoid(out["purchase"])  # P(purchase | click) = P(click and purchase) / P(click)
    ok = p_joint < p_click * (1 - 1e-4)
    torch.testing.assert_close(ratio[ok], (p_joint / p_click)[ok], rtol=1e-3, atol=1e-5)
    assert (ratio <= 1).all()
    aux = model.auxiliary_losses(out, batch)
    assert list(aux) == ["click_and_purchase"]
    want = 0.5 * calibration_penalty([out["click"], out["click_and_purchase"]], batch.masks["click"])[0]
    torch.testing.assert_close(aux["click_and_purchase"], want)
    losses = training_losses(model, batch)  # the calibrator is part of the joint output's loss
    assert "purchase" not in losses and "click_and_purchase" in losses
    assert build("aitm", shop, calibration=0.0).auxiliary_losses(out, batch) == {}


@pytest.mark.parametrize("name", FUNNEL)
def test_the_example_config_needs_only_the_model_name(name):
    from pathlib import Path

    from mtlrec.config import load_config
    from mtlrec.data.encode import Encoder
    from mtlrec.experiment import load_splits

    example = Path(__file__).parents[2] / "configs" / "synthetic.yaml"
    cfg = load_config(example, [f"model.name={name}", "data.synthetic.rows=500", "data.synthetic.users=50",
                                "data.synthetic.items=40"])  # fmt: skip
    schema, tables = load_splits(cfg)
    model = build_model(cfg.model, Encoder(schema).fit(tables["train"]).layout(), schema.tasks)
    assert [d.of for d in model.derived] == [("click", "purchase")]
