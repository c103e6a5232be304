"""CAGrad (Liu et al., NeurIPS 2021): conflict-averse gradient descent. The update d maximises the
worst task's improvement min_t g_t . d within a ball around the average gradient g0,
|d - g0| <= c |g0|; c = 0 is plain averaging, large c approaches MGDA. Solved through its dual,
min_w  g_w . g0 + c |g0| |g_w|  over the simplex (g_w = sum_t w_t g_t); d = g0 + c |g0| g_w / |g_w|.

Cost: T - 1 extra backward passes per step (T per-task passes replace the usual one) and T copies
of the shared gradient; with ``on: representation`` T partial passes through the towers plus the
usual one (see _grads.py). The dual is a few exact min-norm solves on the [T, T] Gram matrix."""

from __future__ import annotations

from typing import Annotated, Sequence

import torch
from pydantic import Field
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting._grads import GradientWeighting, GradTarget
from mtlrec.weighting.base import WEIGHTINGS
from mtlrec.weighting.min_norm import min_norm


def cagrad_weights(k: Tensor, c: float, *, iters: int = 100, tol: float = 1e-9) -> Tensor:
    """[T, T] Gram matrix -> [T] coefficients of d = sum_t coef_t g_t, rescaled by 1 / (1 + c^2)
    as in the authors' code.

    The dual  min_w a.w + r |g_w|  (a_t = g_t . g0, r = c |g0|) is solved by majorise-minimise:
    |g_w| <= (|g_w|^2 / rho + rho) / 2, equal at rho = |g_w|, and for a fixed rho the bound is the
    squared norm of sum_t w_t (g_t + (rho / r) g0): a min-norm problem, solved exactly."""
    k = k.double() / k.diagonal().max().clamp_min(1e-30)
    t = k.shape[0]
    u = torch.full((t,), 1.0 / t, dtype=torch.float64)  # g0 = sum_t u_t g_t
    ku, uku = k @ u, float(u @ k @ u)
    radius = c * uku**0.5
    if radius <= 0:
        return u
    w = u
    for _ in range(iters):
        shift = float(w @ k @ w) ** 0.5 / radius
        new = min_norm(k + shift * (ku[:, None] + ku[None, :]) + shift**2 * uku)  # Gram of g_t + shift g0
        done = float((new - w).abs().max()) < tol
        w = new
        if done:
            break
    gw_norm = float(w @ k @ w) ** 0.5
    coef = u + radius / gw_norm * w if gw_norm > 0 else u
    return coef / (1 + c**2)


@WEIGHTINGS.register("cagrad")
class CAGrad(GradientWeighting):
    description = "the update that most improves the worst task, near the average gradient (radius c)"

    def __init__(
        self, tasks: Sequence[TaskSpec], *, on: GradTarget = "parameters", c: Annotated[float, Field(ge=0)] = 0.4
    ) -> None:
        super().__init__(tasks, on=on)
        self.c = c

    def combine(self, k: Tensor, losses: Tensor) -> Tensor:
        return cagrad_weights(k, self.c)
