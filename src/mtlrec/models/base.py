"""MultiTaskModel: batch -> {task: logits}. Sigmoid, losses, weighting and fusion live outside.

The hooks a model may override (each defaults to nothing, so most models only write
``__init__`` and ``forward``):

``derived``          DerivedTask outputs beside the schema's tasks, e.g. ESMM's pCTCVR
                     (``click_and_purchase``). forward() returns their logits in the same dict; they
                     are trained and evaluated like tasks, on labels built from the schema's labels.
``loss_tasks``       the outputs trained by their own loss (all by default; ESMM leaves its CVR
                     output to be learned through pCTCVR only).
``auxiliary_losses`` extra terms added to named outputs' losses while training, e.g. AITM's
                     behavioural expectation calibrator.
``epoch_stats``      numbers to record once per epoch in history.jsonl, e.g. expert utilisation.

The trainer and the evaluation use these through ``output_tasks``, ``loss_tasks``,
``with_derived`` and ``complete`` and never look at which model they run. What the tasks share
(``shared_parameters``, ``shared``) is computed from the model, not listed by it (``sharing.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.shared_part import ModelSharedPart
from mtlrec.models.sharing import Sharing, find_sharing
from mtlrec.nn import MLP
from mtlrec.registry import Registry
from mtlrec.spec import InputLayout, TaskSpec

B = TypeVar("B", bound=TensorBatch)


@dataclass(frozen=True)
class DerivedTask:
    """A binary output for the joint event "every task of ``of`` happened", where each task of
    ``of`` is conditioned on the one before it (its ``where`` is the previous one's label): e.g.
    ``of=("click", "purchase")`` is click-and-purchase, whose probability is pCTR x pCVR.

    Its label is the product of the labels of ``of`` (each taken as 0 outside its task's sample
    space), its sample space is that of ``of[0]``, and its true probability is the product of the
    parts' true (conditional) probabilities.
    """

    spec: TaskSpec
    of: tuple[str, ...]

    def targets(self, labels: dict[str, Tensor], masks: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        y = torch.ones_like(labels[self.of[0]])
        for name in self.of:
            y = y * torch.where(masks[name], labels[name], torch.zeros_like(labels[name]))
        return y, masks[self.of[0]]

    def probability(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        return np.prod([np.asarray(parts[name], dtype=np.float64) for name in self.of], axis=0)


class MultiTaskModel(nn.Module):
    """Base of every model. Subclasses take ``(layout, tasks)`` plus typed keyword-only
    hyperparameters, and register with ``@MODELS.register(name)``.

    Logits per output: [B] for binary and regression, [B, K] for multiclass and multilabel.
    """

    description = ""
    registered_name = ""
    independent = False  # every task already has its own network: model.task_paths would add nothing

    def __init__(self, layout: InputLayout, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.layout = layout
        self.tasks = tuple(tasks)
        self.derived: tuple[DerivedTask, ...] = ()

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        raise NotImplementedError

    # -- what the tasks share (computed, see sharing.py) -------------------------------------------
    def sharing(self) -> Sharing:
        """The probe's findings, computed on first use and kept (again if the parameters change,
        e.g. once task paths are attached)."""
        names = tuple(n for n, _ in self.named_parameters())
        cached = self.__dict__.get("_sharing")
        if cached is None or cached[0] != names:
            cached = (names, find_sharing(self))
            self.__dict__["_sharing"] = cached
        return cached[1]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters that two or more loss tasks reach (each loss task: its outputs, and what
        its auxiliary term reads), e.g. the CTR tower of ESMM, which click and click_and_purchase
        both go through; what the gradient methods combine the tasks' gradients on."""
        by_name = dict(self.named_parameters())
        return [by_name[n] for n in self.sharing().parameters]

    def shared(self) -> ModelSharedPart:
        """The shared part as the weighting methods take it: the shared parameters, and the shared
        representation of each forward pass (captured by forward hooks, installed once per model)."""
        part = self.__dict__.get("_shared_part")
        if part is None or part.keys != self.sharing().representation:
            if part is not None:
                part.remove()
            part = ModelSharedPart(self, self.sharing())
            self.__dict__["_shared_part"] = part
        return part

    # -- hooks (defaults: nothing extra) ------------------------------------------------------------
    @property
    def output_tasks(self) -> tuple[TaskSpec, ...]:
        """Every key forward() returns: the schema's tasks, then the derived outputs."""
        return self.tasks + tuple(d.spec for d in self.derived)

    @property
    def loss_tasks(self) -> tuple[TaskSpec, ...]:
        """The outputs trained by their own (masked) loss; the loss-weighting method weighs these."""
        return self.output_tasks

    def auxiliary_losses(self, out: dict[str, Tensor], batch: TensorBatch) -> dict[str, Tensor]:
        """Scalar terms added to the losses of the named ``loss_tasks`` while training."""
        return {}

    def epoch_stats(self) -> dict[str, Any]:
        """JSON-ready numbers about the epoch just trained, merged into its history record (gated
        models: ``{"experts": {gate: {expert: mean weight}}}``). Called once per epoch."""
        return {}

    # -- used by the trainer and the evaluation ---------------------------------------------------
    def with_derived(self, batch: B) -> B:
        """``batch`` with the labels and masks of the derived outputs added."""
        if not self.derived or not batch.labels:
            return batch
        labels, masks = dict(batch.labels), dict(batch.masks)
        for d in self.derived:
            labels[d.spec.name], masks[d.spec.name] = d.targets(batch.labels, batch.masks)
        return dataclasses.replace(batch, labels=labels, masks=masks)

    def complete(self, preds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predictions of the schema's tasks (e.g. the simulator's true probabilities) with the
        derived outputs added where missing: products of their parts."""
        missing = [d for d in self.derived if d.spec.name not in preds]
        return {**preds, **{d.spec.name: d.probability(preds) for d in missing}}

    # -- building blocks ----------------------------------------------------------------------------
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
