"""Nash-MTL (Navon et al., ICML 2022): the shared update is the Nash bargaining solution between
the tasks, d = sum_t alpha_t g_t with G^T G alpha = 1 / alpha elementwise (each task's share of
the improvement, g_t . d = 1 / alpha_t, is balanced). Scale-invariant: a task whose loss is
multiplied by 100 gets an alpha 100 times smaller and the same influence.

Cost: T - 1 extra backward passes per step (T per-task passes replace the usual one) and T copies
of the shared gradient; with ``on: representation`` T partial passes through the towers plus the
usual one (see _grads.py). The bargaining system is a few Newton steps on the [T, T] Gram matrix."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting._grads import GradientWeighting, GradTarget
from mtlrec.weighting.base import WEIGHTINGS


def nash_bargaining(k: Tensor, *, ridge: float = 1e-9, iters: int = 100, tol: float = 1e-12) -> Tensor:
    """[T, T] Gram matrix -> [T] alpha > 0 with K alpha = 1 / alpha (0 for a zero gradient).

    With D = diag(K) and C = D^-1/2 K D^-1/2 (the gradients' cosines), alpha = D^-1/2 beta where
    C beta = 1 / beta: the stationary point of the strictly convex f(b) = b^T C b / 2 - sum(log b),
    found by Newton's method with a backtracking line search that keeps b > 0. ``ridge`` on C keeps
    a solution when gradients are exactly opposite (no bargain exists; alpha would be unbounded)."""
    k = k.double()
    norms = k.diagonal().clamp_min(0).sqrt()
    live = norms > 1e-12 * float(norms.max()) if norms.numel() and float(norms.max()) > 0 else norms > 0
    alpha = torch.zeros_like(norms)
    if not bool(live.any()):
        return torch.ones_like(norms)
    n = norms[live]
    c = k[live][:, live] / (n[:, None] * n[None, :]) + ridge * torch.eye(int(live.sum()), dtype=torch.float64)

    def f(b: Tensor) -> float:
        return float(0.5 * b @ c @ b - b.log().sum())

    b = torch.ones_like(n)  # the answer when the gradients are orthogonal
    for _ in range(iters):
        grad = c @ b - 1.0 / b
        if float(grad.abs().max()) < tol:
            break
        step = torch.linalg.solve(c + torch.diag(b.pow(-2)), grad)
        s, value, slope = 1.0, f(b), float(grad @ step)
        while bool((b - s * step <= 0).any()) or f(b - s * step) > value - 1e-4 * s * slope:
            s /= 2
            if s < 1e-12:
                break
        b = b - s * step
    alpha[live] = b / n
    return alpha


@WEIGHTINGS.register("nash_mtl")
class NashMTL(GradientWeighting):
    description = "Nash bargaining between the tasks' gradients (scale-invariant)"

    def __init__(self, tasks: Sequence[TaskSpec], *, on: GradTarget = "parameters") -> None:
        super().__init__(tasks, on=on)

    def combine(self, k: Tensor, losses: Tensor) -> Tensor:
        return nash_bargaining(k)
