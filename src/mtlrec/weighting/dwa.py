"""Dynamic weight average (Liu et al., CVPR 2019): a task whose loss fell less over the last
epoch gets more weight,  w_t = T softmax(r_t / temperature),  r_t = L_t(e-1) / L_t(e-2)  (mean
training losses of the two previous epochs; w = 1 for the first two epochs). Only ratios count, so
the weights do not depend on the scale of a loss.

Cost: none (weights change once per epoch, through ``on_epoch_end``)."""

from __future__ import annotations

from typing import Annotated, Sequence

import torch
from pydantic import Field
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import WEIGHTINGS, LossWeighting, SharedPart


@WEIGHTINGS.register("dwa")
class DWA(LossWeighting):
    description = "weights from how fast each task's loss fell over the last epochs"
    cost = "no extra backward passes"

    def __init__(self, tasks: Sequence[TaskSpec], *, temperature: Annotated[float, Field(gt=0)] = 2.0) -> None:
        super().__init__(tasks)
        self.temperature = temperature
        t = len(self.tasks)
        # mean training loss of the last two epochs (row 0: the older); epochs seen so far
        self.register_buffer("history", torch.full((2, t), float("nan"), dtype=torch.float64))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("current", torch.ones(t))

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.current.tolist()))

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        (torch.stack([losses[t] for t in self.names]) * self.current).sum().backward()
        return {}

    def on_epoch_end(self, epoch: int, mean_losses: dict[str, float]) -> None:
        new = torch.tensor([mean_losses[t] for t in self.names], dtype=torch.float64, device=self.history.device)
        self.history.copy_(torch.stack([self.history[1], new]))
        self.epochs_seen += 1
        if int(self.epochs_seen) >= 2:
            ratio = self.history[1] / self.history[0].clamp_min(1e-12)
            ratio = torch.nan_to_num(ratio, nan=1.0, posinf=1.0)
            self.current.copy_(len(self.names) * torch.softmax(ratio / self.temperature, 0))
