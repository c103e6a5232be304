"""MGDA (Sener & Koltun, NeurIPS 2018): multi-task learning as multi-objective optimisation. The
shared update is the min-norm point of the convex hull of the task gradients: a direction that
decreases every task's loss, or zero at a Pareto-stationary point. ``on: representation`` is the
paper's cheap MGDA-UB (gradients on the shared representation instead of the shared parameters).

Cost: T - 1 extra backward passes per step (T per-task passes replace the usual one) and T copies
of the shared gradient; with ``on: representation`` T partial passes through the towers plus the
usual one (MGDA-UB; see _grads.py)."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting._grads import GradientWeighting, GradTarget
from mtlrec.weighting.base import WEIGHTINGS
from mtlrec.weighting.min_norm import min_norm


@WEIGHTINGS.register("mgda")
class MGDA(GradientWeighting):
    description = "min-norm point of the convex hull of the task gradients (Pareto-stationary direction)"
    cost = "T - 1 extra backward passes per step (on=representation, MGDA-UB: T partial ones through the towers)"

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        *,
        on: GradTarget = "parameters",
        normalize: Literal["none", "l2", "loss", "loss+"] = "none",
    ) -> None:
        super().__init__(tasks, on=on)
        self.normalize = normalize

    def combine(self, k: Tensor, losses: Tensor) -> Tensor:
        """``normalize`` divides each gradient by its norm, its loss or both (the paper's options)
        before the min-norm point is found; the weights returned apply to the raw gradients."""
        norm = k.diagonal().clamp_min(0).sqrt()
        options = {"none": torch.ones_like(norm), "l2": norm, "loss": losses, "loss+": losses * norm}
        scale = options[self.normalize].clamp_min(1e-12)
        return min_norm(k / (scale[:, None] * scale[None, :])) / scale
