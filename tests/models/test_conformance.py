"""Every registered model, through the same checks: a new model is tested by registering it.

Outputs and shapes for every task kind, gradients reaching each shared parameter from two or more
tasks (test_sharing.py checks the whole definition), seeded determinism, and a short training run
that learns (click AUC well above the constant predictor's 0.5), writes a run directory that
reloads to the same metrics, and inspects."""

from __future__ import annotations

import copy

import pytest
import torch

from mtlrec.artifacts import read_history
from mtlrec.cli.main import main
from mtlrec.config import ExperimentConfig
from mtlrec.data.encode import Encoder
from mtlrec.data.synthetic import default_schema
from mtlrec.experiment import load_splits, prepare, run_experiment
from mtlrec.hyper import keyword_parameters
from mtlrec.models import MODELS, build_model
from mtlrec.nn import Gate
from mtlrec.serve.predictor import Predictor
from mtlrec.train.trainer import training_losses

NAMES = MODELS.names()
SMALL_DIMS = (8,)


def small(name: str, **common) -> dict:
    """A model config with small layers: every ``*_dims`` hyperparameter of the model becomes (8,)."""
    params = keyword_parameters(MODELS.get(name))
    section = {k: list(SMALL_DIMS) for k in params if k.endswith("_dims") and k != "tower_dims"}
    return {"name": name, "embedding_dim": 4, "tower_dims": [8], **common, name: section}


def build(name: str, layout, tasks, **common):
    cfg = ExperimentConfig.model_validate({"model": small(name, **common)}).model
    return build_model(cfg, layout, tasks)


@pytest.fixture(scope="module")
def encoded(shop_table):
    schema = default_schema()
    encoder = Encoder(schema).fit(shop_table)
    return schema, encoder.layout(), encoder.transform(shop_table).take(slice(0, 1024))


def test_the_issue_s_models_are_registered():
    assert {"shared_bottom", "single_task", "omoe", "mmoe", "ple", "esmm", "aitm", "cross_stitch"} <= set(NAMES)
    for name in NAMES:
        assert MODELS.get(name).description, name


@pytest.mark.parametrize("bottom", ["mlp", "dcn"])
@pytest.mark.parametrize("name", NAMES)
def test_outputs_cover_every_task_kind(name, bottom, encoded):
    schema, layout, batch = encoded
    assert {t.kind for t in schema.tasks} == {"binary", "regression", "multiclass", "multilabel"}
    model = build(name, layout, schema.tasks, bottom=bottom)
    out = model(batch)
    assert list(out) == [t.name for t in model.output_tasks]
    assert model.output_tasks[: len(schema.tasks)] == schema.tasks  # the schema's tasks first, then derived
    for t in model.output_tasks:
        want = (len(batch),) if t.out_dim == 1 else (len(batch), t.out_dim)
        assert out[t.name].shape == want, t.name
        assert out[t.name].dtype == torch.float32 and torch.isfinite(out[t.name]).all(), t.name
    assert set(model.loss_tasks) <= set(model.output_tasks)
    assert set(model.auxiliary_losses(out, model.with_derived(batch))) <= {t.name for t in model.loss_tasks}


@pytest.mark.parametrize("bottom", ["mlp", "dcn"])
@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_shared_parameters_from_two_or_more_tasks(name, bottom, encoded, loss_reach):
    schema, layout, batch = encoded
    torch.manual_seed(0)
    model = build(name, layout, schema.tasks, bottom=bottom)
    shared = model.shared_parameters()
    if name != "single_task":
        assert shared, "a multi-task model shares something"
    assert len({id(p) for p in shared}) == len(shared), "shared_parameters lists a parameter twice"
    own = {id(p) for p in model.parameters()}
    assert all(id(p) in own for p in shared)
    losses = training_losses(model, batch)
    assert set(losses) == {t.name for t in model.loss_tasks}
    for task, loss in losses.items():
        assert torch.isfinite(loss), task
    reach = loss_reach(model, batch)
    names = {n for n, p in model.named_parameters() if any(p is q for q in shared)}
    want = {n for n, tasks in reach.items() if len(tasks) >= 2}
    assert names == want, f"listed but not reached by 2+ tasks: {sorted(names - want)}; missing: {sorted(want - names)}"
    model.zero_grad()
    sum(losses.values()).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert not dead, f"parameters no loss reaches: {dead}"


@pytest.mark.parametrize("name", NAMES)
def test_a_seed_makes_building_and_training_deterministic(name, encoded):
    schema, layout, batch = encoded

    def train_two_steps():
        torch.manual_seed(3)
        model = build(name, layout, schema.tasks, dropout=0.1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(2):
            opt.zero_grad()
            sum(training_losses(model, batch).values()).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            return model(batch)

    first, second = train_two_steps(), train_two_steps()
    assert all(torch.equal(first[k], second[k]) for k in first)


LEARN = {
    "data": {"source": "synthetic", "synthetic": {"rows": 10_000, "users": 500, "items": 300, "seed": 1}},
    "train": {"epochs": 2, "batch_size": 256, "lr": 0.005, "progress": False, "seed": 0},
}


@pytest.fixture(scope="module")
def learn_data():
    return prepare(ExperimentConfig.model_validate(LEARN))


@pytest.mark.parametrize("name", NAMES)
def test_trains_learns_and_round_trips_its_run_directory(name, learn_data, tmp_path, capsys, metrics_close):
    raw = copy.deepcopy(LEARN)
    raw["model"] = {"name": name, "embedding_dim": 4, "tower_dims": [8]}
    out = tmp_path / name
    metrics = run_experiment(ExperimentConfig.model_validate(raw), out, data=learn_data)

    assert metrics["test"]["click"]["auc"] > 0.6, metrics["test"]["click"]  # the constant predictor: 0.5

    predictor = Predictor.load(out)
    assert [t.name for t in predictor.tasks] == list(metrics["test"])
    result = predictor.evaluate(load_splits(predictor.config)[1]["test"], where="the test split")
    metrics_close(result["data"], metrics["test"])
    metrics_close(result["oracle"], metrics["oracle"]["test"])

    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"model {name}" in text and "click" in text
    gated = any(isinstance(m, Gate) for m in predictor.model.modules())
    for record in read_history(out):  # gated models: which experts each task uses, every epoch
        assert ("experts" in record) == gated
        for gate, weights in record.get("experts", {}).items():
            assert sum(weights.values()) == pytest.approx(1.0, abs=1e-4), gate
            assert all(0.0 <= w <= 1.0 for w in weights.values())
            assert f"| {gate} " in text


def test_the_bottom_is_checked_by_the_config():
    from mtlrec.config import parse_config
    from mtlrec.errors import ConfigError

    assert parse_config({"model": {"bottom": "dcn", "cross_layers": 3}}).model.bottom == "dcn"
    with pytest.raises(ConfigError, match=r"model\.bottom: .*'mlp' or 'dcn'"):
        parse_config({"model": {"bottom": "fm"}})
    with pytest.raises(ConfigError, match=r"model\.cross_layers"):
        parse_config({"model": {"cross_layers": 0}})
