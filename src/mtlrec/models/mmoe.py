"""MMoE, Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): the tasks share a set of MLP experts,
and each task mixes them with its own softmax gate, so tasks that conflict can use different
experts while related tasks share them."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import Experts, FeatureEmbedding, Gate, feature_interaction, mix_tasks, utilisation
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


ALL_TASKS = "all tasks"


@MODELS.register("mmoe")
class MMoE(MultiTaskModel):
    description = "shared MLP experts mixed by one softmax gate per task (Ma et al., KDD 2018)"
    one_gate = False  # OMoE: a single gate, shared by all tasks

    def __init__(
        self,
        layout: InputLayout,
        tasks: Sequence[TaskSpec],
        *,
        embedding_dim: int = 16,
        tower_dims: tuple[int, ...] = (64,),
        dropout: float = 0.0,
        bottom: Bottom = "mlp",
        cross_layers: int = 2,
        n_experts: int = 4,
        expert_dims: tuple[int, ...] = (128,),
    ) -> None:
        super().__init__(layout, tasks)
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        d = self.embedding.out_dim
        self.experts = Experts(d, n_experts, expert_dims, dropout=dropout)
        names = [f"expert_{k}" for k in range(n_experts)]
        keys = [ALL_TASKS] if self.one_gate else [t.name for t in self.tasks]
        self.gates = nn.ModuleDict({k: Gate(d, names) for k in keys})
        self.towers = nn.ModuleDict(
            {t.name: self.tower(self.experts.out_dim, t, tower_dims, dropout) for t in self.tasks}
        )

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        x = self.interaction(self.embedding(batch))  # [B, d]
        w = torch.stack([gate(x) for gate in self.gates.values()], 1)  # [B, gates, n_experts]
        h = mix_tasks(w, self.experts(x)).unbind(1)  # gates x [B, D]
        h = h * len(self.tasks) if self.one_gate else h  # one mixture for every task
        return {t.name: self.logits(t, self.towers[t.name](v)) for t, v in zip(self.tasks, h)}

    def epoch_stats(self) -> dict:
        return utilisation(self.gates)
