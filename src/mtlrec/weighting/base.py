"""LossWeighting: how the per-task losses become one backward pass.

The trainer calls ``stats = weighting.backward(losses, shared)`` with ``shared = model.shared()``
(what the tasks share: parameters, and the shared representation of the step) and never looks at
which method it is. A method keeps its own state (learned weights, running averages) and saves it
with the run through ``state_dict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor, nn

from mtlrec.distributed import SINGLE, World
from mtlrec.registry import Registry
from mtlrec.spec import TaskSpec


class SharedPart(Protocol):
    """What the tasks of a model share, as a weighting method sees it.

    ``parameters``: every parameter that two or more tasks' losses reach (each task's own
    parameters get that task's plain gradient; a gradient method combines the tasks' gradients on
    these). ``representation``: tensors of the forward pass that produced the current losses, reached
    by two or more tasks and computed from shared parameters only, where ``on: representation``
    takes the per-task gradients (see ``_grads.py``); empty when nothing is shared."""

    @property
    def parameters(self) -> Sequence[nn.Parameter]: ...

    @property
    def representation(self) -> Sequence[Tensor]: ...


@dataclass(frozen=True)
class Shared:
    """A fixed ``SharedPart`` (a model builds one that follows its forward passes: ``model.shared()``)."""

    parameters: Sequence[nn.Parameter] = ()
    representation: Sequence[Tensor] = ()


class LossWeighting(nn.Module):
    """Base of every method. Subclasses take ``tasks`` plus typed keyword-only hyperparameters,
    register with ``@WEIGHTINGS.register(name)``, and state their ``cost`` (extra backward passes
    per step). State that must survive a checkpoint lives in parameters or buffers. ``world``: the
    processes training the model (set by the trainer; see distributed.py): a method that reads
    gradients reads the global ones through it."""

    description = ""
    cost = "no extra backward passes"
    registered_name = ""
    world: World = SINGLE

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.names = [t.name for t in self.tasks]

    def weights(self) -> dict[str, float]:
        """The current weight of each task (recorded in history.jsonl)."""
        raise NotImplementedError

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        """Set ``.grad`` of every parameter from the task losses; return stats to record."""
        raise NotImplementedError

    def after_step(self, recompute: Callable[[], dict[str, Tensor]]) -> None:
        """Called after each optimizer step. ``recompute()`` returns the task losses of the same
        batch at the updated parameters (a forward pass, paid only by a method that calls it)."""

    def on_epoch_end(self, epoch: int, mean_losses: dict[str, float]) -> None:
        """Called after each epoch with the mean training loss per task."""


def present(losses: Tensor) -> Tensor:
    """[T] task losses -> [T] bool: False where a task is absent from the batch. A masked loss is
    exactly 0 when no row of the batch lies in the task's sample space (or when it has nothing
    left to learn, e.g. a perfect regression fit); either way its gradient is zero."""
    return losses.detach() != 0


def weighted_sum(losses: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    return torch.stack([losses[t] * weights[t] for t in losses]).sum()


WEIGHTINGS: Registry[LossWeighting] = Registry("weighting")
