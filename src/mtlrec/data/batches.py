"""Encoded data as contiguous tensors; a batch is a slice of a (shuffled) index, never a per-row
Dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from mtlrec.distributed import Shard


@dataclass
class TensorBatch:
    """Model input and targets for B rows. Tasks are named.

    cat:    [B, F] int64, per-field ids (0 = unseen or missing)
    seq:    [B, S, L] int64, per-field ids (0 = padding or unseen)
    dense:  [B, D] float32
    labels: {task: [B] float32 (binary, regression) | [B] int64 (multiclass) | [B, K] float32 (multilabel)}
    masks:  {task: [B] bool}, the task's sample space
    """

    cat: Tensor
    seq: Tensor
    dense: Tensor
    labels: dict[str, Tensor]
    masks: dict[str, Tensor]

    def __len__(self) -> int:
        return self.cat.shape[0]

    def to(self, device: torch.device) -> "TensorBatch":
        """The batch's tensors on ``device`` (this batch itself when they are there already);
        copies from pinned memory do not wait for the device."""
        if self.cat.device == device:
            return self
        move = lambda t: t.to(device, non_blocking=t.is_pinned())  # noqa: E731
        return TensorBatch(move(self.cat), move(self.seq), move(self.dense),
                           {k: move(v) for k, v in self.labels.items()},
                           {k: move(v) for k, v in self.masks.items()})  # fmt: skip


@dataclass
class EncodedData(TensorBatch):
    """All rows of one split, plus what evaluation needs beside the tensors.

    groups: [N] int64 group ids for grouped metrics (GAUC): a stable hash of the group column, so
      that one user is one group across batches and files; or None.
    targets: {regression task: (mean, std)}: its labels (and the model's outputs) are standardised;
      ``value = output * std + mean`` (then expm1 for log1p tasks) gives the original scale.
    """

    groups: np.ndarray | None = None
    targets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: Sequence["EncodedData"]) -> "EncodedData":
        """The rows of ``parts`` one after another (parts encoded by one encoder)."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        groups = None if any(p.groups is None for p in parts) else np.concatenate([p.groups for p in parts])
        return cls(
            cat=torch.cat([p.cat for p in parts]),
            seq=torch.cat([p.seq for p in parts]),
            dense=torch.cat([p.dense for p in parts]),
            labels={t: torch.cat([p.labels[t] for p in parts]) for t in first.labels},
            masks={t: torch.cat([p.masks[t] for p in parts]) for t in first.masks},
            groups=groups,
            targets=first.targets,
        )

    def rows(self, index: Tensor | slice) -> "EncodedData":
        """``take`` that keeps the groups and targets."""
        batch = self.take(index)
        groups = None if self.groups is None else self.groups[index.numpy() if torch.is_tensor(index) else index]
        return EncodedData(batch.cat, batch.seq, batch.dense, batch.labels, batch.masks, groups, self.targets)

    def chunks(self) -> Iterator[tuple["EncodedData", None]]:
        """The rows as one chunk (a stream's come piece by piece, with their raw tables)."""
        yield self, None

    def labels_only(self) -> "EncodedData":
        """The labels, masks, groups and targets, without the inputs (what metrics read)."""
        empty = torch.zeros(len(self), 0)
        return EncodedData(empty.long(), empty.long()[:, :, None], empty, self.labels, self.masks, self.groups,
                           self.targets)  # fmt: skip

    def class_counts(self, task: str) -> tuple[int, int]:
        """(rows, positives) of a binary task in its sample space."""
        y = self.labels[task][self.masks[task]]
        return len(y), int(y.sum())

    def take(self, index: Tensor | slice) -> TensorBatch:
        return TensorBatch(
            cat=self.cat[index],
            seq=self.seq[index],
            dense=self.dense[index],
            labels={t: y[index] for t, y in self.labels.items()},
            masks={t: m[index] for t, m in self.masks.items()},
        )

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None, start: int = 0,
        shard: Shard = Shard(),
    ) -> Iterator[TensorBatch]:  # fmt: skip
        """Batches of ``batch_size`` rows, in order or in a random order drawn from ``generator``;
        ``start`` skips the first ``start`` batches of that order (a resumed epoch). With a
        ``shard`` of several processes, this one's rows of each batch (distributed.py)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for first in range(start * batch_size, n, batch_size):
            rows = slice(first, first + batch_size)
            if order is None and shard.size == 1:
                yield self.take(rows)  # views
            else:  # this process's every size-th row of the batch (an even share)
                yield self.take((order[rows] if order is not None else torch.arange(n)[rows])[shard.rank :: shard.size])
