"""What every registered model shares, checked through autograd on a real batch: the shared
parameters are exactly those that two or more loss tasks' losses reach, and the shared
representation (``on: representation``) is reached by the tasks, carries overlapping task
gradients, and passes a combination of the task gradients to the shared parameters exactly as
``on: parameters`` does."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mtlrec.config import ExperimentConfig
from mtlrec.data.encode import Encoder
from mtlrec.data.synthetic import default_schema
from mtlrec.models import MODELS, build_model
from mtlrec.models.sharing import _upstream
from mtlrec.spec import TaskSpec
from mtlrec.train.trainer import training_losses
from mtlrec.weighting._grads import GradientWeighting, cosine_matrix, task_gradients

VARIANTS = [(name, {}) for name in MODELS.names()] + [(name, {"bottom": "dcn"}) for name in MODELS.names()] + [
    ("mmoe", {"task_paths": ["interests"]}),
    ("ple", {"ple": {"levels": 1}}),
    ("ple", {"ple": {"levels": 3, "n_specific": 2}}),
    ("aitm", {"aitm": {"calibration": 0.0}}),
    ("esmm", {"esmm": {"conditional_loss": True}}),
    ("cross_stitch", {"cross_stitch": {"keep": 1.0}}),  # no sharing at the start, but the units learn it
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in s.items())}" if s else n for n, s in VARIANTS]


def build(name, layout, tasks, **extra):
    section = {k: v for k, v in extra.items() if k == name}
    common = {k: v for k, v in extra.items() if k != name}
    raw = {"name": name, "embedding_dim": 4, "tower_dims": [8], **common, name: {**_small(name), **section.get(name, {})}}
    return build_model(ExperimentConfig.model_validate({"model": raw}).model, layout, tasks)


def _small(name):
    dims = {"shared_bottom": "bottom_dims", "single_task": "bottom_dims", "esmm": "bottom_dims", "aitm": "bottom_dims",
            "mmoe": "expert_dims", "omoe": "expert_dims", "ple": "expert_dims", "cross_stitch": "column_dims"}  # fmt: skip
    return {dims[name]: [8]} if name in dims else {}


@pytest.fixture(scope="module")
def encoded(shop_table):
    schema = default_schema()
    encoder = Encoder(schema).fit(shop_table)
    return schema, encoder.layout(), encoder.transform(shop_table).take(slice(0, 512))


def learned(model):
    """``model`` as training leaves it: cross-stitch units started at ``keep: 1`` (the identity,
    no column read by another task) no longer exactly the identity. Other models unchanged."""
    with torch.no_grad():
        for unit in getattr(model, "units", []):
            for row in unit.rows:
                row.add_(0.01)
    return model


@pytest.mark.parametrize(("name", "extra"), VARIANTS, ids=IDS)
def test_shared_parameters_are_those_two_or_more_losses_reach(name, extra, encoded, loss_reach):
    schema, layout, batch = encoded
    torch.manual_seed(0)
    model = build(name, layout, schema.tasks, **extra)
    shared = {n for n, p in model.named_parameters() if any(p is q for q in model.shared_parameters())}
    reach = loss_reach(learned(model), batch)  # found at the start, true once the parameters moved
    want = {n for n, tasks in reach.items() if len(tasks) >= 2}
    assert shared == want, f"listed but not reached by 2+: {sorted(shared - want)}; missing: {sorted(want - shared)}"
    if name != "single_task":
        assert shared, "a multi-task model shares something"
    assert not [n for n, tasks in reach.items() if not tasks and not n.startswith("task_paths")], "a dead parameter"


def test_the_funnel_s_first_step_is_shared(encoded):
    """ESMM and AITM: click and click_and_purchase both go through the CTR tower (issue #12, 3)."""
    schema, layout, _ = encoded
    for name in ("esmm", "aitm"):
        model = build(name, layout, schema.tasks)
        names = {n for n, p in model.named_parameters() if any(p is q for q in model.shared_parameters())}
        assert {n for n in names if n.startswith("towers.click.")}, name
        assert not {n for n in names if n.startswith("towers.purchase.") or n.startswith("towers.add_to_cart.")}, name


def test_probing_changes_nothing(encoded):
    schema, layout, batch = encoded
    torch.manual_seed(0)
    model = build("cross_stitch", layout, schema.tasks, cross_stitch={"keep": 1.0}, dropout=0.3)
    model.train()
    before = copy.deepcopy(model.state_dict())
    state = torch.get_rng_state()
    model.shared_parameters()
    assert torch.equal(torch.get_rng_state(), state)  # no global random number drawn
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # zeros restored bit for bit
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("name", "extra"), VARIANTS, ids=IDS)
def test_the_representation_is_reached_by_the_tasks_and_their_gradients_overlap(name, extra, encoded, loss_reach):
    schema, layout, batch = encoded
    torch.manual_seed(0)
    model = learned(build(name, layout, schema.tasks, **extra))
    shared = model.shared()
    _, reached = loss_reach(model, batch, representation=True)
    reps = shared.representation  # of the forward pass just run
    if name == "single_task":
        assert reps == []
        return
    assert len(reps) == len(model.sharing().representation) > 0
    tasks = [t.name for t in model.loss_tasks]
    shared_ids = {id(p) for p in shared.parameters}
    for x, by in zip(reps, reached):
        assert len(by) >= 2, by
        assert _upstream(x) <= shared_ids, "a task's own parameter lies below the representation"
    assert any(by == set(tasks) for by in reached)
    if not model.derived:  # no funnel: every tensor of the representation serves every task
        assert all(by == set(tasks) for by in reached)
    losses = training_losses(model, batch)
    grads = task_gradients([losses[t] for t in tasks], shared, "representation")
    off = cosine_matrix(grads)[~torch.eye(len(tasks), dtype=torch.bool)]
    assert bool((off.nan_to_num(0).abs() > 1e-3).any()), "task gradients on the representation do not overlap"


class Fixed(GradientWeighting):
    def __init__(self, tasks, *, on="parameters"):
        super().__init__(tasks, on=on)

    def combine(self, k, losses):
        return torch.linspace(0.5, 2.0, len(losses), dtype=torch.float64)


@pytest.mark.parametrize(("name", "extra"), VARIANTS, ids=IDS)
def test_representation_mode_applies_the_weights_as_parameters_mode_does(name, extra, encoded):
    """With the same weights, both modes give every parameter the same gradient: the shared ones
    sum_t w_t g_t, each task's own its plain gradient; so every path from a loss to a shared
    parameter crosses the representation, and no task's own parameter lies below it."""
    schema, layout, batch = encoded
    torch.manual_seed(0)
    model = build(name, layout, schema.tasks, **extra)
    shared = model.shared()
    learned(model)
    tasks = [TaskSpec(t.name, "binary") for t in model.loss_tasks]
    grads = {}
    for on in ("parameters", "representation"):
        model.zero_grad(set_to_none=True)
        Fixed(tasks, on=on).backward(training_losses(model, batch), shared)
        grads[on] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads["parameters"]) == set(grads["representation"])
    for n, g in grads["parameters"].items():
        scale = float(g.abs().max()) + 1e-12
        torch.testing.assert_close(grads["representation"][n], g, rtol=1e-3, atol=1e-4 * scale, msg=n)


@pytest.mark.parametrize("name", ["mmoe", "ple", "esmm"])
def test_a_gradient_method_trains_on_the_representation(name, tiny_config, tmp_path):
    """Through the trainer: the representation is captured from every training step's forward
    pass (evaluation and the conflict monitor's passes in between)."""
    from mtlrec.artifacts import read_history
    from mtlrec.experiment import run_experiment

    raw = copy.deepcopy(tiny_config)
    raw["model"] = {"name": name, "embedding_dim": 4, "tower_dims": [8], name: _small(name)}
    raw["weighting"] = {"name": "mgda", "mgda": {"on": "representation"}}
    raw["train"].update(epochs=2, conflict_every=3)
    metrics = run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "run")
    history = read_history(tmp_path / "run")
    assert len(history) == 2
    for record in history:
        assert all(math.isfinite(v) for v in record["train_loss"].values())
        assert all(math.isfinite(w) and w >= 0 for w in record["weights"].values())
        assert sum(record["weights"].values()) > 0
    assert math.isfinite(metrics["test"]["click"]["auc"])


def test_the_representation_follows_the_training_forward_passes_only(encoded):
    schema, layout, batch = encoded
    model = build("mmoe", layout, schema.tasks)
    shared = model.shared()
    assert model.shared() is shared  # hooks installed once
    training_losses(model, batch)
    first = shared.representation
    assert len(first) == 2 and all(x.grad_fn is not None for x in first)
    with torch.no_grad():
        model(batch)  # evaluation: the step's tensors stay
    assert all(a is b for a, b in zip(shared.representation, first))
    twin = copy.deepcopy(model)  # a copy carries the hooks along, but captures for itself
    twin(batch)
    assert all(a is b for a, b in zip(shared.representation, first))
    twin_shared = twin.shared()
    assert twin_shared is not shared and [p.data_ptr() for p in twin_shared.parameters] != [
        p.data_ptr() for p in shared.parameters]  # fmt: skip
    training_losses(twin, batch)
    assert len(twin_shared.representation) == 2 and all(a is b for a, b in zip(shared.representation, first))
    training_losses(model, batch)
    assert all(a is not b for a, b in zip(shared.representation, first))  # the next step's
