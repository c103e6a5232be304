"""CAGrad (Liu et al., NeurIPS 2021): conflict-averse gradient descent. The update d maximises the
worst task's improvement min_t g_t . d within a ball around the average gradient g0,
|d - g0| <= c |g0|; c = 0 is plain averaging, large c approaches MGDA. Solved through its dual,
min_w  g_w . g0 + c |g0| |g_w|  over the simplex (g_w = sum_t w_t g_t); d = g0 + c |g0| g_w / |g_w|.

That formula needs g_w != 0 at the dual's optimum. It is 0 only when the tasks are
Pareto-stationary (0 lies in the convex hull of the g_t: collinear opposite gradients, a zero
gradient) and some point of the ball improves no task's loss in the worse direction (always so for
c >= 1, whose ball holds d = 0). Then the best worst-case improvement is exactly 0 and every d of
the ball with g_t . d >= 0 for all t attains it; the update is the one nearest the average
gradient: g0 projected onto that cone. So every c >= 0 has an exact answer, finite weights and a
step no longer than (1 + c) |g0|.

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

STATIONARY = 1e-12  # |min-norm point of the hull|^2 / max_t |g_t|^2 below this: 0 is in the hull


def cagrad_weights(k: Tensor, c: float, *, iters: int = 1000, tol: float = 1e-9) -> Tensor:
    """[T, T] Gram matrix -> [T] coefficients of d = sum_t coef_t g_t, rescaled by 1 / (1 + c^2)
    as in the authors' code.

    The dual  min_w a.w + r |g_w|  (a_t = g_t . g0, r = c |g0|) is solved by majorise-minimise:
    |g_w| <= (|g_w|^2 / rho + rho) / 2, equal at rho = |g_w|, and for a fixed rho the bound is the
    squared norm of sum_t w_t (g_t + (rho / r) g0): a min-norm problem, solved exactly. The
    Pareto-stationary case, where the dual's optimum may have g_w = 0, is solved apart (module
    docstring)."""
    k = k.detach().double()
    t = k.shape[0]
    u = torch.full((t,), 1.0 / max(t, 1), dtype=torch.float64)  # g0 = sum_t u_t g_t
    scale = float(k.diagonal().max()) if t else 0.0
    if scale <= 0:
        return u / (1 + c**2)
    k = k / scale  # the largest gradient has norm 1
    ku, g0_sq = k @ u, max(float(u @ k @ u), 0.0)
    radius = c * g0_sq**0.5
    if radius <= 0:  # c = 0, or g0 = 0: the ball is the point g0
        return u / (1 + c**2)
    hull = min_norm(k)
    if float(hull @ k @ hull) <= STATIONARY:
        step = nearest_in_cone(k, ku)  # d = g0 + sum_t step_t g_t, the point of the cone nearest g0
        if float(step @ k @ step) <= radius**2 * (1 + 1e-9):
            return (u + step) / (1 + c**2)
    w = u
    for _ in range(iters):
        shift = max(float(w @ k @ w), 0.0) ** 0.5 / radius
        new = min_norm(k + shift * (ku[:, None] + ku[None, :]) + shift**2 * g0_sq)  # Gram of g_t + shift g0
        done = float((new - w).abs().max()) < tol
        w = new
        if done and duality_gap(k, ku, w, radius) <= 10 * tol:  # small steps can be slow ones: check
            break
    gw_norm = max(float(w @ k @ w), 0.0) ** 0.5  # > 0 here: 0 is not in the hull, or not the answer
    if gw_norm <= 0:  # (not reached in exact arithmetic) the average, rather than a division by 0
        return u / (1 + c**2)
    return (u + radius / gw_norm * w) / (1 + c**2)


def duality_gap(k: Tensor, ku: Tensor, w: Tensor, radius: float) -> float:
    """The dual's value at ``w`` minus the worst task's improvement with its d (>= 0; 0 at the
    answer), all from the Gram matrix."""
    gw_norm = max(float(w @ k @ w), 0.0) ** 0.5
    if gw_norm <= 0:
        return float("inf")
    coef = torch.full_like(w, 1.0 / len(w)) + radius / gw_norm * w  # d = g0 + radius g_w / |g_w|
    return float(ku @ w) + radius * gw_norm - float((k @ coef).min())


def nearest_in_cone(k: Tensor, ku: Tensor, *, tol: float = 1e-12) -> Tensor:
    """The point of the cone {d : g_t . d >= 0 for all t} nearest g0 = sum_t u_t g_t, as
    g0 + sum_t beta_t g_t with beta >= 0 (Moreau: g0 minus its projection on the polar cone).

    beta minimises |g0 + G^T beta|^2, i.e.  beta^T K beta / 2 + beta . (K u)  over beta >= 0: a
    non-negative least-squares problem on the Gram matrix, solved exactly by Lawson and Hanson's
    active-set method (the columns it frees stay linearly independent, so each subproblem is a
    regular linear system)."""
    t = k.shape[0]
    beta = torch.zeros(t, dtype=torch.float64)
    free: list[int] = []
    for _ in range(3 * t + 3):
        slope = k @ beta + ku  # the gradient; KKT: 0 on the free set, >= 0 elsewhere
        candidates = [i for i in range(t) if i not in free]
        if not candidates:
            break
        j = min(candidates, key=lambda i: float(slope[i]))
        if float(slope[j]) >= -tol:
            break
        free.append(j)
        while True:  # solve on the free set; step back to the boundary while a coordinate goes negative
            z = torch.zeros(t, dtype=torch.float64)
            z[free] = torch.linalg.lstsq(k[free][:, free], -ku[free, None], driver="gelsd").solution[:, 0]
            if bool((z[free] > tol).all()):
                beta = z
                break
            bad = [i for i in free if float(z[i]) <= tol]
            theta = min(float(beta[i] / (beta[i] - z[i])) if float(beta[i] - z[i]) > 0 else 0.0 for i in bad)
            beta = beta + theta * (z - beta)
            free = [i for i in free if float(beta[i]) > tol]
            beta[[i for i in range(t) if i not in free]] = 0.0
            if not free:
                break
    return beta


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
