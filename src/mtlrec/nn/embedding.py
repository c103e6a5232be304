"""One fused embedding table for all categorical fields (per-field offsets, one lookup), one
EmbeddingBag for all sequence fields (mean over non-padding ids), and the dense columns."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.spec import InputLayout


def _offsets(sizes: tuple[int, ...]) -> Tensor:
    return torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0) if sizes else torch.zeros(0, dtype=torch.long)


class FeatureEmbedding(nn.Module):
    """batch -> [B, out_dim]: the concatenated field embeddings and dense values."""

    def __init__(self, layout: InputLayout, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.n_cat, self.n_seq, self.n_dense = len(layout.cat_sizes), len(layout.seq_sizes), layout.n_dense
        self.register_buffer("cat_offsets", _offsets(layout.cat_sizes), persistent=False)
        self.register_buffer("seq_offsets", _offsets(layout.seq_sizes), persistent=False)
        self.table = nn.Embedding(max(sum(layout.cat_sizes), 1), dim)
        # index 0 of the fused sequence table is the padding row: every field's id 0 maps there
        self.bag = nn.EmbeddingBag(max(sum(layout.seq_sizes), 1), dim, mode="mean", padding_idx=0)
        nn.init.normal_(self.table.weight, std=0.01)
        nn.init.normal_(self.bag.weight, std=0.01)
        with torch.no_grad():
            self.bag.weight[0].zero_()
        self.out_dim = (self.n_cat + self.n_seq) * dim + self.n_dense

    @property
    def n_fields(self) -> int:
        return self.n_cat + self.n_seq

    def fields(self, batch: TensorBatch) -> Tensor:
        """[B, F + S, dim]: one embedding per categorical and sequence field."""
        parts = [self.table(batch.cat + self.cat_offsets)]  # [B, F, dim]
        if self.n_seq:
            ids = batch.seq
            ids = torch.where(ids > 0, ids + self.seq_offsets[:, None], ids)  # [B, S, L]
            pooled = self.bag(ids.reshape(-1, ids.shape[-1]))  # [B * S, dim]
            parts.append(pooled.view(ids.shape[0], self.n_seq, self.dim))
        return torch.cat(parts, 1)

    def forward(self, batch: TensorBatch) -> Tensor:
        emb = self.fields(batch).flatten(1)  # [B, (F + S) * dim]
        return torch.cat([emb, batch.dense], 1) if self.n_dense else emb
