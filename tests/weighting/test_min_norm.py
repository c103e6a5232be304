"""The min-norm solver against hand-computed answers, its optimality conditions and a brute-force
grid over the simplex."""

from __future__ import annotations

import pytest
import torch

from mtlrec.weighting.min_norm import min_norm


def gram(*vectors):
    g = torch.tensor(vectors, dtype=torch.float64)
    return g @ g.T


def assert_optimal(k, w, tol=1e-8):
    """In the simplex, and KKT: (K w)_t >= w^T K w everywhere, with equality where w_t > 0."""
    assert w.dtype == torch.float64
    assert float(w.min()) >= -1e-12 and float(w.sum()) == pytest.approx(1.0, abs=1e-10)
    kw, norm2 = k @ w, float(w @ k @ w)
    scale = float(k.diagonal().max())
    assert float(kw.min()) >= norm2 - tol * scale
    active = w > 1e-9
    assert torch.allclose(kw[active], torch.full_like(kw[active], norm2), atol=tol * scale)


def grid_minimum(k, steps):
    """min w^T K w over a regular grid of the simplex (2 or 3 vertices)."""
    axes = [torch.arange(steps + 1, dtype=torch.float64)] * (k.shape[0] - 1)
    idx = torch.cartesian_prod(*axes).reshape(-1, k.shape[0] - 1)
    idx = idx[idx.sum(1) <= steps]
    w = torch.cat([idx, steps - idx.sum(1, keepdim=True)], 1) / steps  # [N, T]
    return float(((w @ k) * w).sum(1).min())


@pytest.mark.parametrize(
    ("vectors", "expected"),
    [
        ([[1.0, 0.0], [0.0, 1.0]], [0.5, 0.5]),  # orthogonal, equal norms: the midpoint
        ([[1.0, 0.0], [0.0, 2.0]], [0.8, 0.2]),  # the shorter one gets more: w1 = 4 / 5
        ([[1.0, 0.0], [-1.0, 1.0]], [0.6, 0.4]),  # |(2w - 1, 1 - w)|^2 is least at w = 0.6
        ([[1.0, 1.0], [2.0, 2.0]], [1.0, 0.0]),  # same direction: the shorter vertex alone
        ([[1.0, 0.0], [-1.0, 0.0]], [0.5, 0.5]),  # opposite: the origin is in the hull
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [1 / 3, 1 / 3, 1 / 3]),
        ([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]], [0.5, 0.5, 0.0]),  # the third is dominated
        ([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [0.0, 0.0, 1.0]),  # the third is the nearest point
    ],
)
def test_hand_computed_answers(vectors, expected):
    k = gram(*vectors)
    w = min_norm(k)
    assert torch.allclose(w, torch.tensor(expected, dtype=torch.float64), atol=1e-9)
    assert_optimal(k, w)


def test_two_gradients_closed_form():
    g = torch.randn(2, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = g @ g.T
    w1 = ((k[1, 1] - k[0, 1]) / (k[0, 0] + k[1, 1] - 2 * k[0, 1])).clamp(0, 1)
    assert torch.allclose(min_norm(k), torch.stack([w1, 1 - w1]), atol=1e-10)


@pytest.mark.parametrize("t,dim,steps", [(2, 2, 2000), (3, 2, 300), (3, 3, 300)])
@pytest.mark.parametrize("seed", range(5))
def test_matches_a_brute_force_grid(t, dim, steps, seed):
    g = torch.randn(t, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    k = g @ g.T
    w = min_norm(k)
    assert_optimal(k, w)
    assert float(w @ k @ w) <= grid_minimum(k, steps) + 1e-12


@pytest.mark.parametrize("t,dim", [(4, 3), (6, 50), (10, 4), (12, 100)])
def test_optimality_conditions_on_random_gradients(t, dim):
    for seed in range(5):
        g = torch.randn(t, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        g = g * torch.logspace(-2, 2, t, dtype=torch.float64)[:, None]  # norms over four decades
        assert_optimal(g @ g.T, min_norm(g @ g.T))


def test_degenerate_inputs():
    assert torch.allclose(min_norm(torch.zeros(3, 3)), torch.full((3,), 1 / 3, dtype=torch.float64))
    assert min_norm(torch.ones(1, 1)).tolist() == [1.0]
    k = gram([1.0, 2.0], [1.0, 2.0], [1.0, 2.0])  # identical gradients: any point, norm unchanged
    w = min_norm(k)
    assert float(w @ k @ w) == pytest.approx(5.0)
    k = gram([0.0, 0.0], [1.0, 0.0])  # a zero gradient is the min-norm point
    assert min_norm(k).tolist() == [1.0, 0.0]

