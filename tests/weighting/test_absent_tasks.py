"""A task with no row of its sample space in the batch (its masked loss is exactly 0, its gradient
zero) takes no part in a method's solve: the update equals the method's update on the present
tasks alone, and the absent task's weight is 0. MGDA used to stop every shared update on such a
batch (the zero gradient is the min-norm point of the hull)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrec.losses import masked_loss
from mtlrec.spec import TaskSpec
from mtlrec.weighting import WEIGHTINGS
from mtlrec.weighting._grads import GradientWeighting, task_gradients
from mtlrec.weighting.base import Shared, present
from mtlrec.weighting.famo import FAMO
from mtlrec.weighting.gradnorm import GradNorm
from mtlrec.weighting.mgda import MGDA

TASKS = [TaskSpec("click", "binary"), TaskSpec("value", "regression"), TaskSpec("purchase", "binary", where="click")]
GRADIENT = [n for n in WEIGHTINGS.names() if issubclass(WEIGHTINGS.get(n), GradientWeighting)]
ROWS = 24


class Toy(nn.Module):
    """A shared bottom and a head per task; each task's loss masked to its own rows."""

    def __init__(self, tasks):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.tasks = list(tasks)
        self.bottom = nn.Sequential(nn.Linear(5, 6), nn.Tanh())
        self.heads = nn.ModuleDict({t.name: nn.Linear(6, 1) for t in self.tasks})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.x = torch.randn(ROWS, 5, generator=g)
        self.y = {t.name: (torch.randn(ROWS, generator=g) > 0).float() for t in self.tasks}

    def losses(self, masks):
        self.h = self.bottom(self.x)
        return {t.name: masked_loss(t, self.heads[t.name](self.h).squeeze(-1), self.y[t.name], masks[t.name])
                for t in self.tasks}  # fmt: skip

    def shared(self):
        return Shared(list(self.bottom.parameters()), [self.h])


def masks(absent=()):
    rows = torch.ones(ROWS, dtype=torch.bool)
    return {t.name: torch.zeros_like(rows) if t.name in absent else rows for t in TASKS}


def step(name, on, tasks, absent=(), **kw):
    """Every parameter's gradient after one backward of method ``name`` (the towers by task name),
    and the weights it reports."""
    torch.manual_seed(0)  # PCGrad draws its projection order from the global generator
    model = Toy(TASKS)
    method = WEIGHTINGS.get(name)(tasks, on=on, **kw)
    losses = model.losses(masks(absent))
    stats = method.backward({t.name: losses[t.name] for t in tasks}, model.shared())
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}
    return grads, stats


def test_present_is_a_nonzero_loss():
    assert present(torch.tensor([0.3, 0.0, -0.0, 2.0])).tolist() == [True, False, False, True]


@pytest.mark.parametrize("on", ["parameters", "representation"])
@pytest.mark.parametrize("name", GRADIENT)
def test_an_absent_task_changes_nothing_but_its_weight(name, on):
    with_absent, stats = step(name, on, TASKS, absent=("purchase",))
    without, stats_without = step(name, on, TASKS[:2])  # the method on the present tasks only
    assert stats["purchase"] == 0.0
    assert [stats["click"], stats["value"]] == pytest.approx([stats_without["click"], stats_without["value"]])
    for n, g in without.items():
        torch.testing.assert_close(with_absent[n], g, rtol=1e-5, atol=1e-7, msg=n)
    assert with_absent["bottom.0.weight"].abs().sum() > 0  # the shared part is still trained


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_mgda_still_updates_the_shared_part_when_a_task_is_absent(on):
    grads, stats = step("mgda", on, TASKS, absent=("purchase",))
    assert stats["purchase"] == 0.0 and stats["click"] > 0 and stats["value"] > 0
    assert grads["bottom.0.weight"].abs().max() > 1e-3


@pytest.mark.parametrize("on", ["parameters", "representation"])
@pytest.mark.parametrize("name", GRADIENT)
def test_one_present_task_gets_the_method_s_answer_for_it_alone(name, on):
    grads, stats = step(name, on, TASKS, absent=("value", "purchase"))
    alone, stats_alone = step(name, on, TASKS[:1])
    assert stats["value"] == stats["purchase"] == 0.0 and stats["click"] == pytest.approx(stats_alone["click"])
    for n, g in alone.items():
        torch.testing.assert_close(grads[n], g, rtol=1e-5, atol=1e-7, msg=n)
    if name in ("mgda", "pcgrad"):  # weight 1: the task's own gradient
        assert stats["click"] == pytest.approx(1.0)


@pytest.mark.parametrize("on", ["parameters", "representation"])
@pytest.mark.parametrize("name", GRADIENT)
def test_no_present_task_gives_zero_weights_and_gradients(name, on):
    grads, stats = step(name, on, TASKS, absent=[t.name for t in TASKS])
    assert stats == {t.name: 0.0 for t in TASKS}
    assert all(bool((g == 0).all()) for g in grads.values())


def test_mgda_loss_normalisation_ignores_the_absent_task():
    """``normalize: loss`` divides by the losses: an absent task's 0 must not enter it."""
    grads, stats = step("mgda", "parameters", TASKS, absent=("purchase",), normalize="loss")
    without, _ = step("mgda", "parameters", TASKS[:2], normalize="loss")
    torch.testing.assert_close(grads["bottom.0.weight"], without["bottom.0.weight"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_gradnorm_balances_the_present_tasks_only(on):
    """GradNorm's targets are means over the tasks: an absent task's zero gradient norm and zero
    loss ratio must not pull them down."""
    grads = {}
    for tasks, absent in ((TASKS, ("purchase",)), (TASKS[:2], ())):
        model = Toy(TASKS)
        method = GradNorm(tasks, on=on)
        losses = model.losses(masks(absent))
        values = torch.stack([losses[t.name].detach() for t in tasks])
        norms = task_gradients([losses[t.name] for t in tasks], model.shared(), on).norm(dim=1)
        with torch.no_grad():  # present tasks balanced: weighted norms 1, loss ratios 1 (the targets' edge)
            method.initial_losses.copy_(torch.where(values != 0, values, torch.full_like(values, 0.5)))
            method.w.copy_(torch.where(norms > 0, 1 / norms, torch.ones_like(norms)))
        method.backward({t.name: losses[t.name] for t in tasks}, model.shared())
        grads[len(tasks)] = method.w.grad.clone()
    assert grads[3][2] == 0
    torch.testing.assert_close(grads[3][:2], grads[2])


def test_famo_leaves_the_absent_task_out():
    model = Toy(TASKS)
    method = FAMO(TASKS)
    method.backward(model.losses(masks(("purchase",))), model.shared())
    w = method.weights()
    assert w["purchase"] == 0.0 and w["click"] > 0 and w["value"] > 0
