"""Uncertainty weighting (Kendall et al., CVPR 2018): each task has a learned log-variance s_t
(homoscedastic uncertainty) and the loss is  sum_t c_t exp(-s_t) L_t + s_t / 2,  with c_t = 1 for
classification and 1/2 for regression. At the optimum exp(-s_t) = 1 / (2 c_t L_t): a task whose
loss is larger (noisier, or on a larger scale) gets a proportionally smaller weight.

Cost: no extra backward pass; T extra parameters, trained by the trainer's optimizer."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import WEIGHTINGS, LossWeighting, SharedPart


@WEIGHTINGS.register("uncertainty")
class Uncertainty(LossWeighting):
    description = "learned per-task log-variances weight the losses (Kendall et al.)"
    cost = "no extra backward passes; T extra parameters (in the optimizer)"

    def __init__(self, tasks: Sequence[TaskSpec], *, init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        self.log_var = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))
        scale = [0.5 if t.kind == "regression" else 1.0 for t in self.tasks]
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, (self.scale * torch.exp(-self.log_var.detach())).tolist()))

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        values = torch.stack([losses[t] for t in self.names])  # [T]
        (self.scale * torch.exp(-self.log_var) * values + 0.5 * self.log_var).sum().backward()
        return {}
