"""OMoE, One-gate Mixture-of-Experts (the baseline of Ma et al., KDD 2018): MLP experts mixed by a
single softmax gate shared by all tasks, so every task sees the same mixture; a tower per task."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import Experts, FeatureEmbedding, Gate, feature_interaction, mix, utilisation
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec

ALL_TASKS = "all tasks"


@MODELS.register("omoe")
class OMoE(MultiTaskModel):
    description = "shared MLP experts mixed by one softmax gate for all tasks (Ma et al., KDD 2018)"

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
        self.gate = Gate(d, [f"expert_{k}" for k in range(n_experts)])
        self.towers = nn.ModuleDict(
            {t.name: self.tower(self.experts.out_dim, t, tower_dims, dropout) for t in self.tasks}
        )

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        x = self.interaction(self.embedding(batch))  # [B, d]
        h = mix(self.gate(x), self.experts(x))  # [B, D], the same for every task
        return {t.name: self.logits(t, self.towers[t.name](h)) for t in self.tasks}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.embedding.parameters(), *self.interaction.parameters(), *self.experts.parameters(),
                *self.gate.parameters()]  # fmt: skip

    def epoch_stats(self) -> dict:
        return utilisation({ALL_TASKS: self.gate})
