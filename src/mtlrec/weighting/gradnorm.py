"""GradNorm (Chen et al., ICML 2018): learned weights w_t that balance the tasks' gradient norms.
Task t's weighted gradient norm G_t = w_t |grad L_t| is pulled towards mean(G) * r_t^alpha, where
r_t is its loss ratio L_t / L_t(step 0) relative to the mean ratio: a task that trains more slowly,
or whose gradient is smaller, gets more weight; one whose gradient is 100x larger gets less. The
weights are renormalised to sum to T after every step.

Cost: T extra partial backward passes per step, through the towers to the shared representation
(the paper's choice is the last shared layer, for the same reason); ``on: parameters`` takes the
norms on all shared parameters instead: T extra full passes. No second-order gradients: the
GradNorm loss's gradient in w is written directly."""

from __future__ import annotations

from typing import Annotated, Callable, Sequence

import torch
from pydantic import Field
from torch import Tensor, nn

from mtlrec.spec import TaskSpec
from mtlrec.weighting._grads import GradTarget, global_norms, task_gradients
from mtlrec.weighting.base import WEIGHTINGS, LossWeighting, SharedPart, present


@WEIGHTINGS.register("gradnorm")
class GradNorm(LossWeighting):
    description = "learned weights that equalise the tasks' gradient norms, adjusted by training rate"
    cost = "T extra partial backward passes per step, through the towers (on=parameters: T full ones)"

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        *,
        alpha: Annotated[float, Field(ge=0)] = 1.5,
        on: GradTarget = "representation",
    ) -> None:
        super().__init__(tasks)
        self.alpha, self.on = alpha, on
        t = len(self.tasks)
        self.w = nn.Parameter(torch.ones(t))  # updated by the trainer's optimizer from the GradNorm loss
        self.register_buffer("initial_losses", torch.full((t,), float("nan")))

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.w.detach().tolist()))

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        values = torch.stack([losses[t] for t in self.names])  # [T]
        grads = task_gradients([losses[t] for t in self.names], shared, self.on)  # [T, P] (P = 0, CPU: none shared)
        norms = global_norms(grads, self.on, self.world).to(values.device)  # [T] |grad L_t|, global batch
        with torch.no_grad():
            detached = values.detach()
            here = present(detached)  # the means below are over the tasks in the batch; the others keep their w
            fresh = torch.isnan(self.initial_losses) & here
            self.initial_losses.copy_(torch.where(fresh, detached, self.initial_losses))
            ratio = torch.nan_to_num(detached / self.initial_losses, nan=1.0, posinf=1.0)
            ratio = ratio / _mean(ratio, here).clamp_min(1e-12)
            g = self.w * norms  # G_t
            target = _mean(g, here) * ratio**self.alpha
            # d/dw_t of sum_t |G_t - target_t| with the target held constant, as in the paper
            self.w.grad = torch.where(here, torch.sign(g - target) * norms, torch.zeros_like(norms))
        (self.w.detach() * values).sum().backward()
        return {}

    def after_step(self, recompute: Callable[[], dict[str, Tensor]]) -> None:
        with torch.no_grad():
            self.w.clamp_(min=1e-3)
            self.w.mul_(len(self.names) / self.w.sum())


def _mean(x: Tensor, where: Tensor) -> Tensor:
    """Mean of ``x`` over ``where`` (0 when it is empty)."""
    return (x * where).sum() / where.sum().clamp_min(1)
