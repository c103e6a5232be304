"""Shared-Bottom (Caruana, 1997): one MLP over the embedded features, shared by all tasks, and a
tower per task."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import MLP, FeatureEmbedding, feature_interaction
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


@MODELS.register("shared_bottom")
class SharedBottom(MultiTaskModel):
    description = "one shared MLP bottom, one tower per task (hard parameter sharing)"

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
        bottom_dims: tuple[int, ...] = (256, 128),
    ) -> None:
        super().__init__(layout, tasks)
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        self.bottom = MLP(self.embedding.out_dim, bottom_dims, dropout=dropout)
        self.towers = nn.ModuleDict(
            {t.name: self.tower(self.bottom.out_dim, t, tower_dims, dropout) for t in self.tasks}
        )

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        h = self.bottom(self.interaction(self.embedding(batch)))  # [B, bottom_dims[-1]]
        return {t.name: self.logits(t, self.towers[t.name](h)) for t in self.tasks}
