"""The gradient-conflict monitor: its numbers on known gradients, when it measures, and that
measuring does not change training."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mtlrec.artifacts import read_history, read_json
from mtlrec.config import ExperimentConfig
from mtlrec.train.conflict import conflict_stats


def test_conflict_stats_on_known_gradients():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]])
    stats = conflict_stats(g, ["a", "b", "c", "d"])
    assert stats["grad_norm"] == {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0}
    cos = stats["cosine"]
    assert list(cos) == ["a/b", "a/c", "a/d", "b/c", "b/d", "c/d"]
    assert cos["a/b"] == pytest.approx(0.0) and cos["a/c"] == pytest.approx(-1.0)
    assert cos["a/d"] is None  # a zero gradient (no rows of the task in the batch): undefined


def test_conflict_stats_match_a_naive_cosine():
    g = torch.randn(4, 30, generator=torch.Generator().manual_seed(0))
    stats = conflict_stats(g, list("abcd"))
    for i, a in enumerate("abcd"):
        for j, b in enumerate("abcd"):
            if i < j:
                want = float(torch.nn.functional.cosine_similarity(g[i], g[j], dim=0))
                assert stats["cosine"][f"{a}/{b}"] == pytest.approx(want, abs=1e-6)


@pytest.fixture(scope="module")
def prepared(tiny_config_shared):
    from mtlrec.experiment import prepare

    return prepare(ExperimentConfig.model_validate(tiny_config_shared))


def train(raw, prepared, out, **train):
    from mtlrec.experiment import run_experiment

    raw = copy.deepcopy(raw)
    raw["train"].update(train)
    run_experiment(ExperimentConfig.model_validate(raw), out, data=prepared)
    return read_history(out), read_json(out / "metrics.json")


def test_default_is_each_epochs_last_step(tiny_config_shared, prepared, tmp_path):
    history, _ = train(tiny_config_shared, prepared, tmp_path / "r", epochs=2)
    steps = -(-len(prepared.encoded["train"]) // tiny_config_shared["train"]["batch_size"])
    names = [t.name for t in prepared.schema.tasks]
    for epoch, record in enumerate(history, start=1):
        (entry,) = record["conflict"]
        assert entry["step"] == epoch * steps
        assert list(entry["grad_norm"]) == names and all(v >= 0 for v in entry["grad_norm"].values())
        assert entry["grad_norm"]["click"] > 0  # (a post-click task may have no rows in a small last batch)
        assert len(entry["cosine"]) == len(names) * (len(names) - 1) // 2
        assert all(c is None or -1.0 <= c <= 1.0 for c in entry["cosine"].values())
        assert entry["weights"] == record["weights"]


def test_every_n_steps_and_off(tiny_config_shared, prepared, tmp_path):
    history, _ = train(tiny_config_shared, prepared, tmp_path / "r", epochs=1, conflict_every=3)
    steps = -(-len(prepared.encoded["train"]) // tiny_config_shared["train"]["batch_size"])
    assert [e["step"] for e in history[0]["conflict"]] == list(range(3, steps + 1, 3))
    history, _ = train(tiny_config_shared, prepared, tmp_path / "off", epochs=1, conflict_every=0)
    assert "conflict" not in history[0]


def test_measuring_does_not_change_training(tiny_config_shared, prepared, tmp_path):
    raw = copy.deepcopy(tiny_config_shared)
    raw["model"]["dropout"] = 0.2  # the measurement's forward pass draws dropout masks too
    _, watched = train(raw, prepared, tmp_path / "a", epochs=1, conflict_every=1)
    _, unwatched = train(raw, prepared, tmp_path / "b", epochs=1, conflict_every=0)
    for task, values in unwatched["test"].items():
        for metric, value in values.items():
            other = watched["test"][task][metric]
            assert (value is None and other is None) or math.isclose(value, other, rel_tol=1e-6), (task, metric)
