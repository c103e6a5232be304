"""PLE: one level is CGC (checked against a naive re-implementation), deeper levels add a shared
gate below the last; utilisation reports every gate."""

from __future__ import annotations

import torch

from mtlrec.config import ExperimentConfig
from mtlrec.models import build_model
from mtlrec.nn import Experts, TaskExperts


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


def test_each_task_s_experts_are_its_own_parameters_computed_as_one_bank(shop):
    """The task experts of a level: one ``Experts`` per task (its parameters its own), drawn and
    computed as the single bank they replaced: the same initial values and outputs."""
    schema = shop[0]
    tasks = [t.name for t in schema.tasks]
    torch.manual_seed(0)
    bank = Experts(5, len(tasks) * 2, (7, 3))  # the single bank of before, from the same draws
    torch.manual_seed(0)
    own = TaskExperts(5, tasks, 2, (7, 3))
    assert list(own.banks) == tasks and all(b.n == 2 for b in own.banks.values())
    for layer in range(2):
        assert torch.equal(torch.cat([b.weights[layer] for b in own.banks.values()]), bank.weights[layer])
        assert torch.equal(torch.cat([b.biases[layer] for b in own.banks.values()]), bank.biases[layer])
    x = torch.randn(4, 5)
    assert torch.equal(own(x), bank(x))
    each = torch.randn(len(tasks) * 2, 4, 5)
    assert torch.equal(own(each), bank(each))
    for i, task in enumerate(tasks):  # task i's experts at 2i, 2i + 1
        torch.testing.assert_close(own(x)[:, 2 * i : 2 * i + 2], naive_experts(own.banks[task], x, range(2)))


def test_weights_saved_with_one_bank_of_task_experts_still_load(shop):
    """Run directories written before each task's experts became parameters of their own."""
    torch.manual_seed(0)
    trained = build(shop, levels=2, n_specific=2)
    old = {}
    for key, value in trained.state_dict().items():
        if ".specific.banks." not in key:
            old[key] = value
    for i, level in enumerate(trained.levels):
        banks = list(level.specific.banks.values())
        for kind in ("weights", "biases"):
            for layer in range(len(banks[0].weights)):
                old[f"levels.{i}.specific.{kind}.{layer}"] = torch.cat([getattr(b, kind)[layer] for b in banks])
    torch.manual_seed(1)
    fresh = build(shop, levels=2, n_specific=2)
    fresh.load_state_dict(old)
    batch = shop[2].take(slice(0, 64))
    trained.eval(), fresh.eval()
    assert all(torch.equal(a, b) for a, b in zip(trained(batch).values(), fresh(batch).values()))


def test_one_level_is_cgc(shop):
    torch.manual_seed(0)
    model = build(shop, levels=1, n_shared=2, n_specific=3).eval()
    batch = shop[2].take(slice(0, 256))
    (level,) = model.levels
    assert level.shared_gate is None  # CGC: no shared gate, nothing above
    x = model.embedding(batch)
    want = {}
    for t in model.tasks:
        own = naive_experts(level.specific.banks[t.name], x, range(3))  # the task's 3 experts
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
    width = level.shared.weights[0].shape[1]
    inputs = {t.name: torch.randn(5, width) for t in model.tasks}
    shared = torch.randn(5, width)
    out, nothing = level(inputs, shared)
    assert nothing is None
    for t in model.tasks:
        own = naive_experts(level.specific.banks[t.name], inputs[t.name], range(2))
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
