"""PLE: one level is CGC (checked against a naive re-implementation), deeper levels add a shared
gate below the last; utilisation reports every gate."""

from __future__ import annotations

import torch

from mtlrec.config import ExperimentConfig
from mtlrec.models import build_model


def build(shop, **section):
    schema, layout, _ = shop
    raw = {"name": "ple", "embedding_dim": 4, "tower_dims": [8], "ple": {"expert_dims": [8, 6], **section}}
    return build_model(ExperimentConfig.model_validate({"model": raw}).model, layout, schema.tasks)


def naive_experts(experts, x, which):
    """The experts ``which`` of a bank, each on its own, layer by layer: [B, in] -> [B, n, D]."""
    outs = []
    for k in which:
        h = x
        for w, b in zip(experts.weights, experts.biases):
            h = torch.relu(h @ w[k] + b[k, 0])
        outs.append(h)
    return torch.stack(outs, 1)


def test_one_level_is_cgc(shop):
    torch.manual_seed(0)
    model = build(shop, levels=1, n_shared=2, n_specific=3).eval()
    batch = shop[2].take(slice(0, 256))
    (level,) = model.levels
    assert level.shared_gate is None  # CGC: no shared gate, nothing above
    x = model.embedding(batch)
    want = {}
    for i, t in enumerate(model.tasks):
        own = naive_experts(level.specific, x, range(3 * i, 3 * i + 3))  # the task's 3 experts
        experts = torch.cat([own, naive_experts(level.shared, x, range(2))], 1)  # [B, 5, D]
        gate = torch.softmax(x @ level.gates[t.name].linear.weight.T + level.gates[t.name].linear.bias, -1)
        h = (gate.unsqueeze(-1) * experts).sum(1)
        want[t.name] = model.logits(t, model.towers[t.name](h))
    got = model(batch)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_deeper_levels_give_each_task_s_experts_its_own_input(shop):
    torch.manual_seed(0)
    model = build(shop, levels=2, n_shared=1, n_specific=2).eval()
    level = model.levels[1]
    inputs = {t.name: torch.randn(5, level.specific.weights[0].shape[1]) for t in model.tasks}
    shared = torch.randn(5, level.specific.weights[0].shape[1])
    out, nothing = level(inputs, shared)
    assert nothing is None
    for i, t in enumerate(model.tasks):
        own = naive_experts(level.specific, inputs[t.name], range(2 * i, 2 * i + 2))
        experts = torch.cat([own, naive_experts(level.shared, shared, range(1))], 1)
        gate = torch.softmax(level.gates[t.name].linear(inputs[t.name]), -1)
        torch.testing.assert_close(out[t.name], (gate.unsqueeze(-1) * experts).sum(1))


def test_levels_stack_with_shared_gates_below_the_last(shop):
    model = build(shop, levels=3)
    assert [lvl.shared_gate is not None for lvl in model.levels] == [True, True, False]
    model(shop[2].take(slice(0, 64)))  # training mode: the gates record their weights
    experts = model.epoch_stats()["experts"]
    tasks = [t.name for t in model.tasks]
    assert set(experts) == {f"{i}.{t}" for i in (1, 2, 3) for t in tasks} | {"1.shared", "2.shared"}
    assert list(experts["2.click"]) == ["own_0", "shared_0", "shared_1"]
    assert len(experts["1.shared"]) == len(tasks) + 2
    assert model.epoch_stats() == {}  # read once per epoch, then reset
