"""Cross-stitch networks (Misra et al., CVPR 2016): one MLP column per task over the shared
embeddings; after every layer a cross-stitch unit replaces each task's activations by a learned
linear combination of all tasks' activations, so the network learns how much to share per layer
(identity: no sharing; uniform: a shared bottom)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import FeatureEmbedding, feature_interaction
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


class CrossStitchUnit(nn.Module):
    """[T, B, D] -> [T, B, D]: out_t = sum_s alpha[t, s] * in_s; alpha starts at ``keep`` on the
    diagonal and (1 - keep) / (T - 1) elsewhere (each row sums to 1).

    Each row of alpha is a parameter of its own: at the last unit row t is read by task t alone
    (it is that task's, not shared), while every column's rows feed every task below it."""

    def __init__(self, n_tasks: int, keep: float) -> None:
        super().__init__()
        off = (1.0 - keep) / (n_tasks - 1) if n_tasks > 1 else 0.0
        alpha = torch.full((n_tasks, n_tasks), off)
        alpha.fill_diagonal_(keep if n_tasks > 1 else 1.0)
        self.rows = nn.ParameterList(nn.Parameter(row.clone()) for row in alpha)

    @property
    def alpha(self) -> Tensor:
        """[T, T] the mixing weights, row t: how task t's column mixes the columns."""
        return torch.stack(list(self.rows))

    def forward(self, h: Tensor) -> Tensor:
        return torch.einsum("ts,sbd->tbd", self.alpha, h)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if (key := f"{prefix}alpha") in state_dict:  # weights saved with alpha as one [T, T] tensor
            for t, row in enumerate(state_dict.pop(key)):
                state_dict[f"{prefix}rows.{t}"] = row
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@MODELS.register("cross_stitch")
class CrossStitch(MultiTaskModel):
    description = "a column per task, mixed after every layer by cross-stitch units (Misra et al., CVPR 2016)"

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
        column_dims: tuple[int, ...] = (128, 64),
        keep: float = 0.9,
    ) -> None:
        super().__init__(layout, tasks)
        if not column_dims:
            raise ValueError("cross_stitch: column_dims needs at least one layer")
        if not 0.0 <= keep <= 1.0:
            raise ValueError(f"cross_stitch: keep must be in [0, 1], got {keep}")
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        n, d = len(self.tasks), self.embedding.out_dim
        self.layers = nn.ModuleList()
        self.units = nn.ModuleList()
        for width in column_dims:
            self.layers.append(nn.ModuleList(nn.Linear(d, width) for _ in range(n)))  # one per task column
            self.units.append(CrossStitchUnit(n, keep))
            d = width
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.towers = nn.ModuleDict({t.name: self.tower(d, t, tower_dims, dropout) for t in self.tasks})

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        x = self.interaction(self.embedding(batch))  # [B, d]
        h = [x] * len(self.tasks)
        for columns, unit in zip(self.layers, self.units):
            stacked = torch.stack([self.dropout(torch.relu(f(v))) for f, v in zip(columns, h)])  # [T, B, D]
            h = list(unit(stacked).unbind(0))
        return {t.name: self.logits(t, self.towers[t.name](v)) for t, v in zip(self.tasks, h)}
