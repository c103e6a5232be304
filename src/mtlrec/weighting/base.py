"""LossWeighting: how the per-task losses become one backward pass.

The trainer calls ``stats = weighting.backward(losses, shared=model.shared_parameters())`` and
never looks at which method it is. A method keeps its own state (learned weights, running
averages) and saves it with the run through ``state_dict``."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from mtlrec.registry import Registry
from mtlrec.spec import TaskSpec


class LossWeighting(nn.Module):
    """Base of every method. Subclasses take ``tasks`` plus typed keyword-only hyperparameters,
    register with ``@WEIGHTINGS.register(name)``, and state their ``cost`` (extra backward passes
    per step). State that must survive a checkpoint lives in parameters or buffers."""

    description = ""
    cost = "no extra backward passes"
    registered_name = ""

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.names = [t.name for t in self.tasks]

    def weights(self) -> dict[str, float]:
        """The current weight of each task (recorded in history.jsonl)."""
        raise NotImplementedError

    def backward(self, losses: dict[str, Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Set ``.grad`` of every parameter from the task losses; return stats to record."""
        raise NotImplementedError

    def after_step(self, recompute: Callable[[], dict[str, Tensor]]) -> None:
        """Called after each optimizer step. ``recompute()`` returns the task losses of the same
        batch at the updated parameters (a forward pass, paid only by a method that calls it)."""

    def on_epoch_end(self, epoch: int, mean_losses: dict[str, float]) -> None:
        """Called after each epoch with the mean training loss per task."""


def weighted_sum(losses: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    return torch.stack([losses[t] * weights[t] for t in losses]).sum()


WEIGHTINGS: Registry[LossWeighting] = Registry("weighting")
