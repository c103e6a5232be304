"""PCGrad (Yu et al., NeurIPS 2020): gradient surgery. Each task's gradient is projected onto the
normal plane of every other task's gradient it conflicts with (negative inner product), in random
order; the shared update is the sum of the projected gradients.

Cost: T - 1 extra backward passes per step (T per-task passes replace the usual one) and T copies
of the shared gradient; with ``on: representation`` T partial passes through the towers plus the
usual one (see _grads.py)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting._grads import GradientWeighting, GradTarget
from mtlrec.weighting.base import WEIGHTINGS


def project_conflicting(k: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """[T, T] Gram matrix -> [T, T] coefficients C with projected g_i = sum_j C[i, j] g_j.

    For each i, in a random order of the others j: if g_i . g_j < 0 (g_i as projected so far),
    g_i -= (g_i . g_j / |g_j|^2) g_j. Only inner products are needed: g_i . g_j = (C K)[i, j]."""
    k = k.double()
    t = k.shape[0]
    c = torch.eye(t, dtype=torch.float64)
    for i in range(t):
        for j in torch.randperm(t, generator=generator).tolist():
            if j == i or k[j, j] <= 0:
                continue
            dot = c[i] @ k[:, j]
            if dot < 0:
                c[i, j] -= dot / k[j, j]
    return c


@WEIGHTINGS.register("pcgrad")
class PCGrad(GradientWeighting):
    description = "projects each task's gradient off the others' where they conflict, then sums them"

    def __init__(self, tasks: Sequence[TaskSpec], *, on: GradTarget = "parameters") -> None:
        super().__init__(tasks, on=on)

    def combine(self, k: Tensor, losses: Tensor) -> Tensor:
        return project_conflicting(k).sum(0)  # sum_i projected g_i = sum_j (sum_i C[i, j]) g_j
