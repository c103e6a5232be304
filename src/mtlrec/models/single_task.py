"""Single-task baseline: an independent network per task (its own embeddings, bottom and tower),
trained side by side. Every multi-task result is compared with this."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import MLP, FeatureEmbedding, feature_interaction
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


class TaskNet(nn.Module):
    """One task's whole network: its own embeddings, bottom, MLP and output layer."""

    def __init__(self, layout: InputLayout, task: TaskSpec, embedding_dim: int, dims: tuple[int, ...], dropout: float,
                 bottom: str, cross_layers: int):  # fmt: skip
        super().__init__()
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        self.mlp = MLP(self.embedding.out_dim, dims, dropout=dropout)
        self.out = nn.Linear(self.mlp.out_dim, task.out_dim)

    def forward(self, batch: TensorBatch) -> Tensor:
        return self.out(self.mlp(self.interaction(self.embedding(batch))))


@MODELS.register("single_task")
class SingleTask(MultiTaskModel):
    description = "independent networks per task, nothing shared (the baseline)"
    independent = True

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
        dims = tuple(bottom_dims) + tuple(tower_dims)
        self.nets = nn.ModuleDict(
            {t.name: TaskNet(layout, t, embedding_dim, dims, dropout, bottom, cross_layers) for t in self.tasks}
        )

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        return {t.name: self.logits(t, self.nets[t.name](batch)) for t in self.tasks}
