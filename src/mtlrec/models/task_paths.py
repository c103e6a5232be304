"""Task-specific input paths (``model.task_paths``): a task named there gets its own embeddings
and MLP beside whatever model is chosen, and that network's logits are added to the model's
logits of the task.

Why: a task whose signal lives in memorising its own feature combinations (the simulator's
``interests`` and ``user_segment``: one label set per user, recognisable from the user's profile
features) loses to its single-task baseline when it must share embeddings with click, whose
gradients dominate the shared tables. Its own tables and MLP (the idea of STEM, Su et al., AAAI
2024: shared plus task-specific embeddings) remove that negative transfer, while the task still
reads the shared experts through the model's own tower. One model, one forward pass, one
artefact to serve.

A task inside ESMM's or AITM's funnel cannot have a path: its logit feeds the joint outputs.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.errors import ConfigError
from mtlrec.models.base import MultiTaskModel
from mtlrec.models.single_task import TaskNet


class TaskPaths(nn.Module):
    """{task: TaskNet}; ``add(batch, out)`` adds each net's logits to ``out[task]``."""

    def __init__(self, model: MultiTaskModel, names: Sequence[str], *, embedding_dim: int, dims: Sequence[int],
                 dropout: float, bottom: str, cross_layers: int) -> None:  # fmt: skip
        super().__init__()
        tasks = {t.name: t for t in model.tasks}
        chained = {n for d in model.derived for n in d.of}
        for name in names:
            if name not in tasks:
                raise ConfigError(f"model.task_paths: '{name}' is not a task of the schema (tasks: {', '.join(tasks)})")
            if name in chained:
                raise ConfigError(
                    f"model.task_paths: '{name}' is in {model.registered_name}'s funnel, whose joint outputs "
                    f"are built from its logit; give a path only to tasks outside the funnel"
                )
        if len(set(names)) < len(names):
            raise ConfigError(f"model.task_paths: a task is named twice in {list(names)}")
        self.nets = nn.ModuleDict(
            {n: TaskNet(model.layout, tasks[n], embedding_dim, tuple(dims), dropout, bottom, cross_layers) for n in names}
        )

    def add(self, batch: TensorBatch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        extra = {name: net(batch) for name, net in self.nets.items()}
        return {**out, **{name: out[name] + v.reshape(out[name].shape) for name, v in extra.items()}}


def attach_task_paths(model: MultiTaskModel, paths: TaskPaths) -> MultiTaskModel:
    """Make ``model(batch)`` return its logits plus ``paths``' (a forward hook, so every model
    gets paths without code of its own); the paths' parameters become the model's."""
    model.task_paths = paths
    model.register_forward_hook(_add_paths)
    return model


def _add_paths(model: MultiTaskModel, args: tuple, out: dict[str, Tensor]) -> dict[str, Tensor]:
    return model.task_paths.add(args[0], out)  # the module's own paths, so that a deep copy uses its copy
