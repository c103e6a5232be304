"""PLE, Progressive Layered Extraction (Tang et al., RecSys 2020): stacked CGC levels, each with
experts shared by all tasks and experts owned by one task. A task's gate mixes its own and the
shared experts; a shared gate mixes all of a level's experts into the next level's shared input.
Task-owned experts keep conflicting tasks apart (the "seesaw" MMoE can show); one level is CGC."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import CGCLevel, FeatureEmbedding, feature_interaction, utilisation
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


@MODELS.register("ple")
class PLE(MultiTaskModel):
    description = "CGC levels of shared and task-owned experts with per-task gates (Tang et al., RecSys 2020)"

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
        levels: int = 2,
        n_shared: int = 2,
        n_specific: int = 1,
        expert_dims: tuple[int, ...] = (64,),  # 8 experts of 64 per level ~ MMoE's 4 of 128
    ) -> None:
        super().__init__(layout, tasks)
        if levels < 1:
            raise ValueError(f"ple: levels must be >= 1, got {levels}")
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        names = [t.name for t in self.tasks]
        self.levels = nn.ModuleList()
        d = self.embedding.out_dim
        for level in range(levels):
            cgc = CGCLevel(d, names, n_shared=n_shared, n_specific=n_specific, dims=expert_dims,
                           dropout=dropout, last=level == levels - 1)  # fmt: skip
            self.levels.append(cgc)
            d = cgc.out_dim
        self.towers = nn.ModuleDict({t.name: self.tower(d, t, tower_dims, dropout) for t in self.tasks})

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        shared = self.interaction(self.embedding(batch))  # [B, d]
        inputs = {t.name: shared for t in self.tasks}
        for level in self.levels:
            inputs, shared = level(inputs, shared)  # {task: [B, D]}, [B, D] (None after the last)
        return {t.name: self.logits(t, self.towers[t.name](inputs[t.name])) for t in self.tasks}

    def epoch_stats(self) -> dict:
        gates = {}
        for i, level in enumerate(self.levels, start=1):
            gates.update({f"{i}.{t}": g for t, g in level.gates.items()})
            if level.shared_gate is not None:
                gates[f"{i}.shared"] = level.shared_gate
        return utilisation(gates)
