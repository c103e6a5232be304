"""Loss-weighting methods move their weights in the documented direction on a two-task toy problem
where the second loss is multiplied by 100."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import Shared
from mtlrec.weighting.dwa import DWA
from mtlrec.weighting.famo import FAMO
from mtlrec.weighting.gradnorm import GradNorm
from mtlrec.weighting.rlw import RLW
from mtlrec.weighting.uncertainty import Uncertainty

TASKS = [TaskSpec("small", "binary"), TaskSpec("big", "binary")]
SCALE = 100.0


class Toy(nn.Module):
    """A shared bottom and one linear head per task; squared-error losses, the second x100."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bottom = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(8, 1) for _ in range(2))
        self.x = torch.randn(64, 6)
        self.y = torch.stack([self.x[:, 0] - self.x[:, 1], torch.sin(2 * self.x[:, 2])])

    def losses(self, scale=SCALE):
        self.h = self.bottom(self.x)  # the shared representation of this forward pass
        mse = [((head(self.h).squeeze(-1) - y) ** 2).mean() for head, y in zip(self.heads, self.y)]
        return {"small": mse[0], "big": scale * mse[1]}

    def shared(self):
        return Shared(list(self.bottom.parameters()), [self.h])


def train(method, steps=200, lr=0.02, epoch_steps=None, scale=SCALE):
    """Adam on the model and the method's own parameters, the way the trainer does it."""
    model = Toy()
    opt = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=lr)
    sums = {t: 0.0 for t in method.names}
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        losses = model.losses(scale)
        method.backward(losses, model.shared())
        opt.step()
        method.after_step(lambda: model.losses(scale))
        for t in sums:
            sums[t] += float(losses[t].detach())
        if epoch_steps and step % epoch_steps == 0:
            method.on_epoch_end(step // epoch_steps, {t: v / epoch_steps for t, v in sums.items()})
            sums = {t: 0.0 for t in method.names}
    return method.weights()


def test_uncertainty_gives_the_larger_loss_a_smaller_weight():
    method = Uncertainty(TASKS)
    assert method.weights() == {"small": 1.0, "big": 1.0}
    w = train(method)
    assert w["big"] < 0.1 * w["small"]  # at the optimum exp(-s_t) = 1 / (2 L_t): about 100x apart
    assert float(method.log_var.detach()[1]) > 0  # the big loss's log-variance rose


def test_uncertainty_regression_tasks_get_half_weight():
    method = Uncertainty([TaskSpec("a", "binary"), TaskSpec("b", "regression")])
    assert method.weights() == {"a": 1.0, "b": 0.5}


def test_gradnorm_lowers_the_weight_of_the_task_with_the_larger_gradient():
    method = GradNorm(TASKS)
    w = train(method)
    assert w["big"] < 1.0 < w["small"]
    assert sum(w.values()) == pytest.approx(2.0)  # renormalised to T after every step
    assert bool(torch.isfinite(method.initial_losses).all())


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_gradnorm_on_either_target(on):
    w = train(GradNorm(TASKS, on=on), steps=60)
    assert w["big"] < w["small"]


def test_dwa_weighs_by_the_rate_of_decrease_not_the_scale():
    method = DWA(TASKS)
    method.on_epoch_end(1, {"small": 1.0, "big": 100.0})
    assert method.weights() == {"small": 1.0, "big": 1.0}  # the first two epochs: w = 1
    method.on_epoch_end(2, {"small": 0.5, "big": 90.0})  # small halved, big fell 10 %
    w = method.weights()
    assert w["big"] > 1.0 > w["small"]
    r = torch.tensor([0.5, 0.9], dtype=torch.float64)
    assert [w["small"], w["big"]] == pytest.approx((2 * torch.softmax(r / 2.0, 0)).tolist())
    rescaled = DWA(TASKS)  # the same ratios on another scale: the same weights
    rescaled.on_epoch_end(1, {"small": 0.01, "big": 1e4})
    rescaled.on_epoch_end(2, {"small": 0.005, "big": 9e3})
    assert rescaled.weights() == pytest.approx(w)


def test_dwa_on_the_toy_problem_ignores_the_100x_scale():
    scaled = DWA(TASKS)
    w = train(scaled, steps=120, epoch_steps=30)
    ratio = scaled.history[1] / scaled.history[0]
    assert (w["big"] > w["small"]) == bool(ratio[1] > ratio[0])  # the slower task gets more
    assert w != {"small": 1.0, "big": 1.0}
    assert sum(w.values()) == pytest.approx(2.0)


def test_famo_moves_weight_to_the_task_whose_loss_fell_least():
    method = FAMO(TASKS)
    before = torch.softmax(method.logits, 0)
    losses = {"small": torch.tensor(1.0, requires_grad=True), "big": torch.tensor(100.0, requires_grad=True)}
    method.backward(losses, Shared())
    w = method.weights()  # effective weights z_t / (c L_t): the 100x loss gets 100x less
    assert w["small"] / w["big"] == pytest.approx(SCALE)
    method.after_step(lambda: {"small": torch.tensor(0.5), "big": torch.tensor(99.0)})
    after = torch.softmax(method.logits, 0)
    assert after[1] > before[1] and after[0] < before[0]


def test_famo_trains_the_toy_without_drifting_to_the_scaled_task():
    method = FAMO(TASKS)
    w = train(method)
    assert all(math.isfinite(v) and v > 0 for v in w.values())
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["big"] < w["small"]  # log-losses: the raw weight of a 100x loss stays ~100x smaller


def test_rlw_draws_fresh_weights_in_the_simplex():
    method = RLW(TASKS)
    seen = []
    for _ in range(5):
        losses = {"small": torch.tensor(1.0, requires_grad=True), "big": torch.tensor(2.0, requires_grad=True)}
        method.backward(losses, Shared())
        w = method.weights()
        assert all(v > 0 for v in w.values()) and sum(w.values()) == pytest.approx(1.0)
        seen.append(w["small"])
    assert len(set(seen)) == 5
