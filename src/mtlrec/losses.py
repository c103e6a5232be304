"""Loss per task kind, averaged over the task's sample space only (rows whose mask is False do not
count, whatever their label)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrec.data.batches import TensorBatch
from mtlrec.spec import TaskSpec


def _per_row(task: TaskSpec, logits: Tensor, y: Tensor) -> Tensor:
    """[B] unreduced loss."""
    name = task.loss_name
    if name == "cross_entropy":
        return F.cross_entropy(logits, y, reduction="none")
    if name == "bce":
        loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return loss.mean(-1) if loss.dim() == 2 else loss
    if name == "huber":
        return F.huber_loss(logits, y, reduction="none")
    if name == "poisson":
        return poisson_deviance(logits, y)
    return F.mse_loss(logits, y, reduction="none")


def poisson_deviance(log_rate: Tensor, y: Tensor) -> Tensor:
    """[B] Poisson unit deviance 2 (y log(y / mu) - y + mu) of counts ``y`` >= 0 at the rates
    mu = exp(``log_rate``): the negative log-likelihood less its value at mu = y, so it is >= 0 and
    0 at a perfect fit (weightings that divide or take logs of losses need that), with the same
    gradient 2 (mu - y) in the log rate. In float32 at least (as autocast runs mse_loss): exp and
    log in bfloat16 would be off by about 1 %."""
    dtype = torch.promote_types(log_rate.dtype, torch.float32)
    log_rate, y = log_rate.to(dtype), y.to(dtype)
    return 2.0 * (torch.xlogy(y, y) - y * log_rate - y + log_rate.exp())


def masked_loss(task: TaskSpec, logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean loss over rows where ``mask`` is True; 0 (with a gradient path) when there are none.

    Summed and counted in float32 whatever the logits' dtype: under bfloat16 autocast a bf16 count
    has 8 significant bits (1001 rows would count as 1000)."""
    m = mask.to(torch.float32)
    return (_per_row(task, logits, y).float() * m).sum() / m.sum().clamp_min(1.0)


def task_losses(tasks: Sequence[TaskSpec], logits: dict[str, Tensor], batch: TensorBatch) -> dict[str, Tensor]:
    return {t.name: masked_loss(t, logits[t.name], batch.labels[t.name], batch.masks[t.name]) for t in tasks}


def to_predictions(task: TaskSpec, logits: Tensor, target: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Logits -> what a user reads: probabilities (binary, multiclass, multilabel) or values on the
    label's original scale (regression; ``target`` is the label's standardisation (mean, std));
    a poisson task's logit is a log rate, so its prediction is the expected count."""
    if task.kind == "multiclass":
        return torch.softmax(logits, -1)
    if task.kind in ("binary", "multilabel"):
        return torch.sigmoid(logits)
    return decode_regression(task, logits.exp() if task.loss_name == "poisson" else logits, target)


def output_predictions(
    tasks: Sequence[TaskSpec], logits: dict[str, Tensor], targets: dict[str, tuple[float, float]]
) -> dict[str, Tensor]:
    """``to_predictions`` for every task; ``targets``: the regression labels' standardisation."""
    return {t.name: to_predictions(t, logits[t.name], targets.get(t.name, (0.0, 1.0))) for t in tasks}


def decode_regression(task: TaskSpec, values: Tensor, target: tuple[float, float]) -> Tensor:
    """Standardised regression values -> the label's original scale (a poisson task's counts are
    divided by their train mean, ``target`` = (0, mean): see ``encode.target_scale``)."""
    mean, std = target
    values = values * std + mean
    return values.expm1() if task.transform == "log1p" else values
