"""Sorting rows within groups (requests, users) by a score, without a Python loop per group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Groups:
    """Rows partitioned by a group column: ``codes`` [N] in 0..G-1 (groups in sorted order of
    their values), ``values`` [G] the group values, ``sizes`` [G] rows per group."""

    codes: np.ndarray
    values: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, groups: np.ndarray) -> "Groups":
        values, codes = np.unique(np.asarray(groups), return_inverse=True)
        codes = codes.ravel().astype(np.int64)
        return cls(codes, values, np.bincount(codes, minlength=len(values)))

    @property
    def n(self) -> int:
        return len(self.values)

    def rank(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(order [N], rank [N]): rows sorted by group, then score descending, ties by row index;
        ``rank[i]`` is the 0-based place of row ``order[i]`` in its group. NaN scores rank last."""
        key, nan = descending(np.asarray(scores, dtype=np.float64))
        order = np.lexsort((np.arange(len(key)), key, nan, self.codes))
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, self.sizes)
        return order, rank


def descending(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort keys that put ``scores`` best first and NaN after all, -inf included: ``np.lexsort((key,
    nan))`` (the NaN flag is the more significant key)."""
    nan = np.isnan(scores)
    return np.where(nan, 0.0, -scores), nan
