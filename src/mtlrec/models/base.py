"""MultiTaskModel: batch -> {task: logits}. Sigmoid, losses, weighting and fusion live outside."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.nn import MLP
from mtlrec.registry import Registry
from mtlrec.spec import InputLayout, TaskSpec


class MultiTaskModel(nn.Module):
    """Base of every model. Subclasses take ``(layout, tasks)`` plus typed keyword-only
    hyperparameters, and register with ``@MODELS.register(name)``.

    Logits per task: [B] for binary and regression, [B, K] for multiclass and multilabel.
    """

    description = ""
    registered_name = ""

    def __init__(self, layout: InputLayout, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.layout = layout
        self.tasks = tuple(tasks)

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        raise NotImplementedError

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss reaches (what gradient-based weighting methods act on)."""
        return []

    @staticmethod
    def tower(in_dim: int, task: TaskSpec, dims: Sequence[int], dropout: float) -> nn.Sequential:
        """A task tower: an MLP and a linear output of the task's width."""
        mlp = MLP(in_dim, dims, dropout=dropout)
        return nn.Sequential(mlp, nn.Linear(mlp.out_dim, task.out_dim))

    @staticmethod
    def logits(task: TaskSpec, out: Tensor) -> Tensor:
        """[B, 1] -> [B] for single-output tasks."""
        return out.squeeze(-1) if task.out_dim == 1 else out


MODELS: Registry[MultiTaskModel] = Registry("model")
