"""CAGrad against a naive reference (the primal problem solved by scipy's SLSQP), for every c >= 0,
on ordinary, collinear, opposite, zero and rank-deficient gradients; the cone projection of its
Pareto-stationary case against scipy's NNLS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, nnls
from torch import nn

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import Shared
from mtlrec.weighting.cagrad import CAGrad, cagrad_weights, nearest_in_cone

CS = [0.0, 0.4, 0.9, 1.0, 1.5, 2.0, 5.0]
DEGENERATE = {
    "one_dim_opposite": [[1.0], [-2.0]],  # the issue's losses theta and -2 theta
    "collinear_opposite": [[1.0, 2.0, 0.0], [-0.5, -1.0, 0.0]],
    "collinear_same_way": [[1.0, 2.0], [3.0, 6.0]],
    "a_zero_gradient": [[1.0, 0.0], [0.0, 0.0], [0.3, 1.0]],
    "all_zero": [[0.0, 0.0], [0.0, 0.0]],
    "rank_deficient_stationary": [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]],  # 0 in the hull, g0 already in the cone
    "rank_deficient_three_collinear": [[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [-1.0, -1.0, 0.0]],
    "more_tasks_than_dimensions": [[1.0, 0.2], [-0.7, 1.0], [-0.4, -1.0], [0.9, -0.3]],
}


def reference(g: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """max_d min_t g_t . d subject to |d - g0| <= c |g0| by SLSQP (several starts); then, among
    the maximisers, the d nearest g0. Returns (best worst-case improvement, that d)."""
    t, p = g.shape
    g0 = g.mean(0)
    r = c * float(np.linalg.norm(g0))
    if r == 0:
        return float((g @ g0).min()), g0
    best = -math.inf
    rng = np.random.default_rng(0)
    for start in range(8):
        x0 = np.concatenate([g0 + (rng.normal(size=p) * r / 2 if start else 0.0), [0.0]])
        cons = [{"type": "ineq", "fun": lambda x: g @ x[:p] - x[p]},
                {"type": "ineq", "fun": lambda x: r * r - np.sum((x[:p] - g0) ** 2)}]  # fmt: skip
        x = minimize(lambda x: -x[p], x0, constraints=cons, method="SLSQP", options={"ftol": 1e-15, "maxiter": 2000}).x
        if np.sum((x[:p] - g0) ** 2) <= r * r * (1 + 1e-7):
            best = max(best, float((g @ x[:p]).min()))
    cons = [{"type": "ineq", "fun": lambda d: g @ d - best + 1e-10},
            {"type": "ineq", "fun": lambda d: r * r - np.sum((d - g0) ** 2)}]  # fmt: skip
    d = minimize(lambda d: np.sum((d - g0) ** 2), g0.copy(), jac=lambda d: 2 * (d - g0), constraints=cons,
                 method="SLSQP", options={"ftol": 1e-15, "maxiter": 2000}).x  # fmt: skip
    return best, d


def update(g: np.ndarray, c: float) -> tuple[np.ndarray, torch.Tensor]:
    """CAGrad's d (the authors' 1 / (1 + c^2) rescaling undone) and its weights."""
    gt = torch.tensor(g, dtype=torch.float64)
    w = cagrad_weights(gt @ gt.T, c)
    return ((w * (1 + c**2)) @ gt).numpy(), w


def check_against_reference(g: np.ndarray, c: float, *, nearest: bool) -> None:
    d, w = update(g, c)
    assert torch.isfinite(w).all()
    g0 = g.mean(0)
    scale = max(float(np.linalg.norm(g, axis=1).max()), 1e-300)
    assert np.linalg.norm(d - g0) <= c * np.linalg.norm(g0) + 1e-9 * scale  # in the ball
    value, want = reference(g, c)
    assert float((g @ d).min()) == pytest.approx(value, abs=1e-7 * scale**2)  # the best worst case
    if nearest:  # where several d are best: the one nearest g0 (unique otherwise, the same check)
        assert np.linalg.norm(d - want) <= 1e-6 * scale


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_gradients_match_the_reference(name, c):
    check_against_reference(np.array(DEGENERATE[name]), c, nearest=True)


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t,dim", [(2, 3), (3, 2), (3, 5)])
def test_random_gradients_match_the_reference(t, dim, seed, c):
    g = np.random.default_rng(seed).normal(size=(t, dim)) * np.logspace(-1, 1, t)[:, None]
    check_against_reference(g, c, nearest=True)


@pytest.mark.parametrize("c", [1.5, 2.0, 5.0])
def test_one_dimensional_conflicts_give_no_update_with_c_at_least_one(c):
    """The issue's 130 random 1-D conflicting cases (60 crashed with a complex square root, the rest
    stepped up to 3.7 times the largest gradient): with c >= 1 the ball holds d = 0, which improves
    neither task and hurts neither, and every other d hurts one of them."""
    rng = np.random.default_rng(int(c * 10))
    for _ in range(130):
        a, b = rng.uniform(0.01, 10.0, size=2)
        g = np.array([[a], [-b]]) * 10.0 ** rng.uniform(-6, 6)
        d, w = update(g, c)
        norms = torch.tensor(np.abs(g[:, 0]))
        assert torch.isfinite(w).all() and float((w * norms).max()) <= float(norms.max())  # no blow-up
        assert abs(float(d[0])) <= 1e-12 * float(np.abs(g).max())


def test_the_issue_s_example_end_to_end():
    """One shared parameter, losses theta and -2 theta, c = 5: no update, finite small weights."""
    theta = nn.Parameter(torch.tensor([1.0]))
    method = CAGrad([TaskSpec("a", "binary"), TaskSpec("b", "binary")], c=5.0)
    weights = method.backward({"a": theta.sum(), "b": -2 * theta.sum()}, Shared([theta]))
    assert float(theta.grad.abs().max()) <= 1e-7
    assert weights == pytest.approx({"a": 1 / 26, "b": 0.5 / 26})  # d = 1 g_a + 0.5 g_b = 0, rescaled


@pytest.mark.parametrize("seed", range(20))
def test_nearest_in_cone_solves_the_nonnegative_least_squares_problem(seed):
    rng = np.random.default_rng(seed)
    t, rank = int(rng.integers(2, 7)), int(rng.integers(1, 4))
    g = rng.normal(size=(t, rank)) @ rng.normal(size=(rank, 6))  # rank-deficient for t > rank
    k = torch.tensor(g @ g.T)
    u = torch.full((t,), 1.0 / t, dtype=torch.float64)
    beta = nearest_in_cone(k, k @ u)
    assert bool((beta >= 0).all())
    want, _ = nnls(g.T, -g.T @ u.numpy())  # min |G^T beta + g0| over beta >= 0
    got_d, want_d = g.T @ (u.numpy() + beta.numpy()), g.T @ (u.numpy() + want)
    assert np.linalg.norm(got_d - want_d) <= 1e-9 * np.linalg.norm(g)
    assert float((g @ got_d).min()) >= -1e-9 * np.linalg.norm(g) ** 2  # in the cone: hurts no task
