"""OMoE, One-gate Mixture-of-Experts (the baseline of Ma et al., KDD 2018): MLP experts mixed by a
single softmax gate shared by all tasks, so every task sees the same mixture; a tower per task.
MMoE with ``one_gate``: the same hyperparameters and expert utilisation record (gate 'all tasks')."""

from __future__ import annotations

from mtlrec.models.base import MODELS
from mtlrec.models.mmoe import MMoE


@MODELS.register("omoe")
class OMoE(MMoE):
    description = "shared MLP experts mixed by one softmax gate for all tasks (Ma et al., KDD 2018)"
    one_gate = True
