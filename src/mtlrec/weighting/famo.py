"""FAMO (Liu et al., NeurIPS 2023): fast adaptive multitask optimisation. The model descends
sum_t z_t log L_t (weights z = softmax(xi), so every task's loss falls at a balanced *rate*);
after each step the logits xi take an Adam step that moves weight towards the tasks whose log loss
fell least on that batch. O(1) in T: no per-task gradients.

Cost: no extra backward pass; one extra forward pass per step (the same batch's losses after the
update, through the ``after_step`` hook)."""

from __future__ import annotations

from typing import Annotated, Callable, Sequence

import torch
from pydantic import Field
from torch import Tensor

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import WEIGHTINGS, LossWeighting, SharedPart, present

EPS = 1e-8


@WEIGHTINGS.register("famo")
class FAMO(LossWeighting):
    description = "balances the rate at which each task's loss falls (log-loss weights, adapted each step)"
    cost = "no extra backward passes; one extra forward pass per step (the batch's losses after the step)"

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        *,
        lr: Annotated[float, Field(gt=0)] = 0.025,
        gamma: Annotated[float, Field(ge=0)] = 0.01,
    ) -> None:
        super().__init__(tasks)
        self.lr, self.gamma = lr, gamma  # the logits' Adam learning rate and L2 decay (the paper's)
        t = len(self.tasks)
        for name in ("logits", "adam_m", "adam_v", "prev_losses"):
            self.register_buffer(name, torch.zeros(t))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_weights", torch.full((t,), 1.0 / t))

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.last_weights.tolist()))

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        values = torch.stack([losses[t] for t in self.names])  # [T]
        here = present(values)  # a task with no rows in this batch (loss exactly 0) is left out
        z = torch.softmax(self.logits, 0)
        d = values.clamp_min(EPS)
        w = torch.where(here, z / d.detach(), torch.zeros_like(z))
        w = w / w.sum().clamp_min(EPS)  # gradient = sum_t w_t grad L_t = grad of sum_t (z_t / c) log L_t
        self.last_weights.copy_(w)
        self.prev_losses.copy_(values.detach())
        (w * values).sum().backward()
        return {}

    def after_step(self, recompute: Callable[[], dict[str, Tensor]]) -> None:
        with torch.no_grad():
            new = torch.stack([recompute()[t].detach() for t in self.names])
            delta = (self.prev_losses + EPS).log() - (new + EPS).log()  # how much each log loss fell
            z = torch.softmax(self.logits, 0)
            grad = z * (delta - z @ delta) + self.gamma * self.logits  # d(z . delta)/d logits + L2
            self.adam_step += 1
            step = int(self.adam_step)
            self.adam_m.mul_(0.9).add_(0.1 * grad)
            self.adam_v.mul_(0.999).add_(0.001 * grad**2)
            m_hat = self.adam_m / (1 - 0.9**step)
            v_hat = self.adam_v / (1 - 0.999**step)
            self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + EPS))
