"""Gradient methods against known answers: the shared machinery (per-task gradients, write-back,
the shared representation, tasks absent from the batch), PCGrad's projections, the Nash
bargaining condition, CAGrad's dual, MGDA's common descent direction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrec.spec import TaskSpec
from mtlrec.weighting._grads import GradientWeighting, representation_edges
from mtlrec.weighting.base import Shared
from mtlrec.weighting.cagrad import cagrad_weights
from mtlrec.weighting.mgda import MGDA
from mtlrec.weighting.nash_mtl import nash_bargaining
from mtlrec.weighting.pcgrad import PCGrad, project_conflicting


def tasks(n):
    return [TaskSpec(f"t{i}", "binary") for i in range(n)]


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


class Toy(nn.Module):
    """A two-layer shared bottom and a linear head per task; squared-error losses."""

    def __init__(self, n_tasks=3, dim=5, hidden=4):
        super().__init__()
        torch.manual_seed(0)
        self.bottom = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(n_tasks))
        self.x = torch.randn(16, dim)
        self.y = torch.randn(n_tasks, 16)

    def losses(self):
        self.h = self.bottom(self.x)  # the shared representation of this forward pass
        return {f"t{i}": ((head(self.h).squeeze(-1) - self.y[i]) ** 2).mean() for i, head in enumerate(self.heads)}

    def shared(self):
        return Shared(list(self.bottom.parameters()), [self.h])


class Fixed(GradientWeighting):
    """Fixed weights, to check how they are applied; keeps the Gram matrix it was given."""

    def __init__(self, tasks, *, on="parameters", w=(0.5, 2.0, -1.0)):
        super().__init__(tasks, on=on)
        self.w = torch.tensor(w, dtype=torch.float64)

    def combine(self, k, losses):
        self.k = k
        return self.w


def per_task_grads(model):
    """{task: [grads of every parameter]} computed one task at a time."""
    out = {}
    for name in model.losses():
        model.zero_grad(set_to_none=True)
        model.losses()[name].backward()
        out[name] = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_shared_part_gets_the_combination_and_towers_their_own_gradient(on):
    model = Toy()
    ref = per_task_grads(model)
    method = Fixed(tasks(3), on=on)
    stats = method.backward(model.losses(), model.shared())
    assert stats == {"t0": 0.5, "t1": 2.0, "t2": -1.0} == method.weights()
    params = list(model.parameters())
    shared = {id(p) for p in model.shared().parameters}
    for i, p in enumerate(params):
        if id(p) in shared:
            want = sum(float(w) * ref[f"t{t}"][i] for t, w in enumerate(method.w))
        else:
            want = sum(ref[f"t{t}"][i] for t in range(3))  # each head: its own task's plain gradient
        assert torch.allclose(p.grad, want, atol=1e-6), i
    if on == "parameters":  # the Gram matrix of the flattened shared gradients
        g = torch.stack([torch.cat([ref[f"t{t}"][i].flatten() for i in range(len(params)) if id(params[i]) in shared])
                         for t in range(3)]).double()  # fmt: skip
        assert torch.allclose(method.k, g @ g.T, rtol=1e-5, atol=1e-8)


def test_representation_edges_take_each_tensor_in_a_graph_once():
    model = Toy()
    h = model.bottom(model.x)
    inner = model.bottom[0].weight  # a leaf: no edge of a graph to replace a gradient on
    edges = representation_edges([h, h, torch.zeros(3), inner])
    assert [(e.node, e.output_nr) for e in edges] == [(h.grad_fn, 0)]
    parts = torch.randn(4, 3, requires_grad=True).unbind(0)  # one node, several outputs
    assert [e.output_nr for e in representation_edges(parts[2:])] == [2, 3]


def test_nothing_shared_falls_back_to_the_plain_sum():
    model = Toy()
    ref = per_task_grads(model)
    method = PCGrad(tasks(3))
    method.backward(model.losses(), Shared())
    for i, p in enumerate(model.parameters()):
        assert torch.allclose(p.grad, sum(ref[f"t{t}"][i] for t in range(3)), atol=1e-6)


# --- PCGrad --------------------------------------------------------------------------------------


def test_pcgrad_by_hand():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    projected = project_conflicting(g @ g.T) @ g
    assert torch.allclose(projected, torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64))


@pytest.mark.parametrize("seed", range(10))
def test_pcgrad_conflicting_pair_becomes_orthogonal_and_agreeing_pair_is_unchanged(seed):
    g = rand(2, 6, seed=seed)
    if float(g[0] @ g[1]) > 0:
        g[1] = -g[1]  # make them conflict
    projected = project_conflicting(g @ g.T) @ g
    assert float(projected[0] @ g[1]) == pytest.approx(0.0, abs=1e-12)
    assert float(projected[1] @ g[0]) == pytest.approx(0.0, abs=1e-12)
    g[1] = -g[1]  # now they agree
    assert torch.equal(project_conflicting(g @ g.T), torch.eye(2, dtype=torch.float64))


def test_pcgrad_end_to_end_on_linear_losses():
    """With L_t = g_t . theta the gradients are the g_t: theta.grad must be the sum of projections."""
    g = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    theta = nn.Parameter(torch.zeros(3))
    PCGrad(tasks(3)).backward({f"t{i}": g[i] @ theta + 1.0 for i in range(3)}, Shared([theta]))
    # t2 is orthogonal to both, so the order does not matter: (0.5, 0.5, 0) + (0, 1, 0) + (0, 0, 1)
    assert torch.allclose(theta.grad, torch.tensor([0.5, 1.5, 1.0]))


# --- MGDA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", ["none", "l2", "loss", "loss+"])
def test_mgda_direction_does_not_increase_any_loss(normalize):
    g = rand(4, 8, seed=3).float()
    theta = nn.Parameter(torch.zeros(8))
    method = MGDA(tasks(4), normalize=normalize)
    losses = {f"t{i}": g[i] @ theta + 1.0 for i in range(4)}  # positive losses for "loss" scaling
    method.backward(losses, Shared([theta]))
    assert float((g @ theta.grad).min()) >= -1e-6  # a descent direction (or zero) for every task
    assert all(w >= 0 for w in method.weights().values())


# --- Nash-MTL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("t,dim", [(2, 2), (3, 5), (4, 10), (6, 40)])
@pytest.mark.parametrize("seed", range(4))
def test_nash_bargaining_condition(t, dim, seed):
    g = rand(t, dim, seed=seed) * torch.logspace(-1, 1, t, dtype=torch.float64)[:, None]
    k = g @ g.T
    alpha = nash_bargaining(k)
    assert float(alpha.min()) > 0
    assert torch.allclose(k @ alpha, 1.0 / alpha, rtol=1e-6)


def test_nash_orthogonal_gradients_and_scale_invariance():
    g = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    assert torch.allclose(nash_bargaining(g @ g.T), torch.tensor([0.5, 2.0], dtype=torch.float64))
    g = rand(3, 6, seed=1)
    alpha = nash_bargaining(g @ g.T)
    scaled = g * torch.tensor([100.0, 1.0, 1.0], dtype=torch.float64)[:, None]
    alpha_scaled = nash_bargaining(scaled @ scaled.T)
    assert torch.allclose(alpha_scaled * torch.tensor([100.0, 1.0, 1.0], dtype=torch.float64), alpha, rtol=1e-6)


def test_nash_opposite_gradients_stay_finite():
    g = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert torch.isfinite(nash_bargaining(g @ g.T)).all()


# --- CAGrad --------------------------------------------------------------------------------------


def test_cagrad_with_c_zero_is_the_average():
    g = rand(3, 4, seed=2)
    assert torch.allclose(cagrad_weights(g @ g.T, 0.0), torch.full((3,), 1 / 3, dtype=torch.float64))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("c", [0.2, 0.5, 1.0])
def test_cagrad_improves_the_worst_task_within_its_ball(seed, c):
    g = rand(3, 3, seed=seed)
    k = g @ g.T
    d = (cagrad_weights(k, c) * (1 + c**2)) @ g  # undo the authors' rescaling
    g0 = g.mean(0)
    assert float((d - g0).norm()) <= c * float(g0.norm()) + 1e-8
    # d maximises min_t g_t . d over the ball: at least as good as the average and as any point
    # of a grid of directions on the ball's surface
    worst = float((g @ d).min())
    assert worst >= float((g @ g0).min()) - 1e-9
    u = rand(4000, 3, seed=100 + seed)
    ball = g0 + c * float(g0.norm()) * u / u.norm(dim=1, keepdim=True)
    assert worst >= float((ball @ g.T).min(1).values.max()) - 1e-6
