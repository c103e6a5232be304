"""Random loss weighting (Lin et al., TMLR 2022): at every step the weights are drawn afresh,
softmax of T standard normals (they sum to 1). A baseline that many elaborate methods fail to
beat; the randomness also helps escape poor local optima.

Cost: none."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import WEIGHTINGS, LossWeighting, SharedPart


@WEIGHTINGS.register("rlw")
class RLW(LossWeighting):
    description = "fresh random weights every step: softmax of standard normals"
    cost = "no extra backward passes"

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__(tasks)
        self.register_buffer("last_weights", torch.full((len(self.tasks),), 1.0 / len(self.tasks)))

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.last_weights.tolist()))

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        # drawn from the global (CPU) generator, seeded by train.seed, then placed beside the losses
        w = torch.softmax(torch.randn(len(self.names)), 0).to(self.last_weights.device)
        self.last_weights.copy_(w)
        (torch.stack([losses[t] for t in self.names]) * w).sum().backward()
        return {}
