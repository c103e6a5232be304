"""One fused embedding table for all categorical fields (per-field offsets, one lookup), one
EmbeddingBag for all sequence fields (mean over non-padding ids), and the dense columns."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.spec import InputLayout


def _offsets(sizes: tuple[int, ...]) -> Tensor:
    return torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0) if sizes else torch.zeros(0, dtype=torch.long)


def kept_rows(old_sizes: tuple[int, ...], new_sizes: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Where the rows of a fused table over fields of ``old_sizes`` go in one over ``new_sizes``
    whose fields grew at their ends (a grown vocabulary keeps every id's index within its field):
    (rows in the new table, the same rows in the old one)."""
    old_at, new_at = _offsets(old_sizes).tolist(), _offsets(new_sizes).tolist()
    if len(new_sizes) != len(old_sizes) or any(n < o for o, n in zip(old_sizes, new_sizes)):
        raise ValueError(f"fields of sizes {old_sizes} cannot grow into {new_sizes}")
    new = [torch.arange(size) + at for size, at in zip(old_sizes, new_at)]
    old = [torch.arange(size) + at for size, at in zip(old_sizes, old_at)]
    empty = torch.zeros(0, dtype=torch.long)
    return torch.cat(new) if new else empty, torch.cat(old) if old else empty


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

    @staticmethod
    def grown_rows(old: InputLayout, new: InputLayout) -> dict[str, tuple[Tensor, Tensor]]:
        """{parameter name: kept_rows} of this module's tables when ``old`` grows into ``new``."""
        return {"table.weight": kept_rows(old.cat_sizes, new.cat_sizes),
                "bag.weight": kept_rows(old.seq_sizes, new.seq_sizes)}  # fmt: skip

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
