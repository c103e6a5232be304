"""Every registered weighting method, automatically: built from the config, sets finite gradients,
reports its weights, saves and restores its state, and trains shared_bottom on the simulator."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from mtlrec.artifacts import load_tensors, read_history, save_tensors
from mtlrec.config import ExperimentConfig, WeightingConfig
from mtlrec.hyper import keyword_parameters
from mtlrec.spec import TaskSpec
from mtlrec.weighting import WEIGHTINGS, build_weighting
from mtlrec.weighting.base import Shared

METHODS = WEIGHTINGS.names()
TASKS = [TaskSpec("a", "binary"), TaskSpec("b", "binary"), TaskSpec("c", "regression")]
GRADIENT_ON = {  # methods with an ``on`` hyperparameter run on both targets
    name: ["parameters", "representation"] for name in METHODS if "on" in keyword_parameters(WEIGHTINGS.get(name))
}


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bottom = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(6, 1) for _ in TASKS)
        self.x, self.y = torch.randn(32, 4), torch.randn(len(TASKS), 32)

    def losses(self):
        self.h = self.bottom(self.x)  # the shared representation of this forward pass
        parts = zip(TASKS, self.heads, self.y)
        return {t.name: ((head(self.h).squeeze(-1) - y) ** 2).mean() * (i + 1) for i, (t, head, y) in enumerate(parts)}

    def shared(self):
        return Shared(list(self.bottom.parameters()), [self.h])


def test_all_methods_of_the_issue_are_registered():
    expected = {"static", "equal", "uncertainty", "gradnorm", "dwa", "rlw",
                "pcgrad", "mgda", "cagrad", "nash_mtl", "famo"}  # fmt: skip
    assert expected <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_describes_itself(name):
    cls = WEIGHTINGS.get(name)
    assert cls.description and cls.cost, name
    assert cls.registered_name == name
    for p in keyword_parameters(cls).values():
        assert p.default is not p.empty, f"{name}.{p.name} needs a default"


@pytest.mark.parametrize("name", METHODS)
def test_backward_sets_finite_gradients_and_reports_weights(name):
    method = build_weighting(WeightingConfig(name=name), TASKS)
    model = Toy()
    opt = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=0.01)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        stats = method.backward(model.losses(), model.shared())
        assert isinstance(stats, dict)
        for p in model.parameters():
            assert p.grad is not None and bool(torch.isfinite(p.grad).all())
        opt.step()
        method.after_step(model.losses)
    method.on_epoch_end(1, {t.name: 1.0 for t in TASKS})
    weights = method.weights()
    assert list(weights) == [t.name for t in TASKS]
    assert all(isinstance(v, float) and math.isfinite(v) for v in weights.values())


@pytest.mark.parametrize("name", METHODS)
def test_state_survives_a_safetensors_round_trip(name, tmp_path):
    method = build_weighting(WeightingConfig(name=name), TASKS)
    model = Toy()
    opt = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=0.05)
    for epoch in range(1, 4):
        opt.zero_grad(set_to_none=True)
        method.backward(model.losses(), model.shared())
        opt.step()
        method.after_step(model.losses)
        method.on_epoch_end(epoch, {"a": 1.0 / epoch, "b": 2.0 / epoch**0.5, "c": 3.0})
    state = method.state_dict()
    fresh = build_weighting(WeightingConfig(name=name), TASKS)
    if not state:
        assert fresh.weights() == method.weights()
        return
    save_tensors(tmp_path / "w.safetensors", state)
    fresh.load_state_dict(load_tensors(tmp_path / "w.safetensors"))
    assert fresh.weights() == pytest.approx(method.weights())


@pytest.fixture(scope="module")
def prepared(tiny_config_module):
    from mtlrec.experiment import prepare

    return prepare(ExperimentConfig.model_validate(tiny_config_module))


@pytest.fixture(scope="module")
def tiny_config_module(tiny_config_shared):
    raw = copy.deepcopy(tiny_config_shared)
    raw["train"].update(epochs=1, conflict_every=4)
    return raw


CASES = [(name, on) for name in METHODS for on in GRADIENT_ON.get(name, [None])]


@pytest.mark.parametrize(("name", "on"), CASES, ids=[f"{n}-{o}" if o else n for n, o in CASES])
def test_trains_shared_bottom_on_the_simulator(name, on, prepared, tiny_config_module, tmp_path):
    from mtlrec.experiment import run_experiment

    raw = copy.deepcopy(tiny_config_module)
    raw["weighting"] = {"name": name, **({name: {"on": on}} if on else {})}
    metrics = run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "run", data=prepared)
    (record,) = read_history(tmp_path / "run")
    names = [t.name for t in prepared.schema.tasks]
    assert all(math.isfinite(v) for v in record["train_loss"].values())
    assert list(record["weights"]) == names and all(math.isfinite(v) for v in record["weights"].values())
    assert record["conflict"] and all(list(c["weights"]) == names for c in record["conflict"])
    assert all(m["auc"] is not None and math.isfinite(m["auc"]) for t, m in metrics["test"].items() if "auc" in m)
    has_state = bool(WEIGHTINGS.get(name)(prepared.schema.tasks).state_dict())
    assert (tmp_path / "run" / "weighting.safetensors").is_file() == has_state
