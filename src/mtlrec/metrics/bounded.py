"""A task's metrics over a split too large to hold its scores: each chunk of rows is folded into
statistics whose size does not depend on the number of rows.

- Means (logloss, accuracy, mse, mae, poisson_deviance, ...), WAPE's two sums and confusion counts
  (precision, recall, f1, macro f1) are sums: exact.
- AUC (and a multilabel task's micro and macro AUC) counts positives and negatives per score bin:
  up to 2**16 bins whose edges are quantiles of the first ``SAMPLE_ROWS`` scores (held until
  then), so that each bin holds about as many rows as any other, and a score that many rows share
  starts a bin of its own. A positive and a negative in different bins are ordered as the exact AUC
  orders them; a pair in one bin counts one half, where the exact AUC counts 0, 1/2 or 1. So the
  binned AUC is within (pairs sharing a bin that holds two or more distinct scores) / (2 x all
  pairs) of the exact one; ``bound`` reports it: about 2**-17 when the scores spread like the
  sample's, 0 when no bin holds two distinct scores (tied scores count one half in both).
- GAUC and NDCG@10 (by group) are exact: rows are spilled to disk in buckets by the hash of their
  group (every row of a group in one bucket, in the order they came), and each bucket's groups are
  scored when the split ends; memory is one bucket's rows (the split's rows / ``GAUC_BUCKETS``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mtlrec.data.hashing import splitmix64
from mtlrec.metrics import NDCG_K, binary, multiclass, multilabel, regression, task_metrics
from mtlrec.metrics._inputs import pair_1d
from mtlrec.metrics.binary import per_group_auc

BINS = 1 << 16
SAMPLE_ROWS = 1 << 18
GAUC_BUCKETS = 256
NAN = float("nan")
NDCG = f"ndcg@{NDCG_K}"
_RECORD = np.dtype([("group", "<u8"), ("score", "<f8"), ("label", "u1")])

# metrics that are means over rows: folded as (mean x rows) and divided at the end
_MEANS = {
    "binary": {"logloss": binary.logloss},
    "regression": {"mse": regression.mse, "mae": regression.mae, "poisson_deviance": regression.poisson_deviance},
    "multiclass": {"accuracy": multiclass.accuracy, "logloss": multiclass.logloss},
}


def bin_edges(sample: np.ndarray) -> np.ndarray:
    """Up to BINS - 1 increasing edges: quantiles of the sample that are sample values, so that a
    value the sample holds many times begins its own bin (``searchsorted(edges, p, "right")``)."""
    if not sample.size:
        return np.zeros(0)
    ordered = np.sort(sample)
    at = -(-np.arange(1, BINS) * ordered.size // BINS) - 1  # the inverted-CDF quantiles k / BINS
    return np.unique(ordered[at])


def binned_auc(pos: np.ndarray, neg: np.ndarray, one_score: np.ndarray | None = None) -> tuple[float, float]:
    """(AUC, its largest possible distance from the exact AUC) from per-bin counts [BINS] of
    positives and negatives, bins in score order; ``one_score`` [BINS] marks the bins whose rows
    all have one score (their pairs are ties in the exact AUC too); (nan, 0) when a class is absent."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return NAN, 0.0
    below = np.cumsum(neg) - neg  # negatives in lower bins
    shared = (pos * neg).astype(np.float64)
    unsure = float(shared.sum() if one_score is None else shared[~one_score].sum())
    return float((pos * below).sum() + 0.5 * shared.sum()) / (n_pos * n_neg), 0.5 * unsure / (n_pos * n_neg)


class _Histogram:
    """Positives and negatives per score bin, for ``width`` columns of scores; the bins are cut
    when ``SAMPLE_ROWS`` rows have come (or when read), the rows before held until then."""

    def __init__(self, width: int) -> None:
        self.counts = np.zeros((2, width, BINS), dtype=np.int64)
        self.low = np.full((width, BINS), np.inf)  # each bin's lowest and highest score
        self.high = np.full((width, BINS), -np.inf)
        self.edges: np.ndarray | None = None
        self.held: list[tuple[np.ndarray, np.ndarray]] = []

    def update(self, y: np.ndarray, p: np.ndarray) -> None:
        y, p = y.reshape(len(y), -1) > 0.5, p.reshape(len(p), -1)
        if self.edges is None:
            self.held.append((y, p))
            if sum(len(h) for h, _ in self.held) >= SAMPLE_ROWS:
                self._cut()
            return
        cell = np.arange(p.shape[1]) * BINS + np.searchsorted(self.edges, p, side="right")  # [N, K]
        size = p.shape[1] * BINS
        self.counts[1] += np.bincount(cell[y], minlength=size).reshape(-1, BINS)
        self.counts[0] += np.bincount(cell[~y], minlength=size).reshape(-1, BINS)
        np.minimum.at(self.low.reshape(-1), cell.reshape(-1), p.reshape(-1))
        np.maximum.at(self.high.reshape(-1), cell.reshape(-1), p.reshape(-1))

    def _cut(self) -> None:
        held, self.held = self.held, []
        self.edges = bin_edges(np.concatenate([p.reshape(-1) for _, p in held]))
        for y, p in held:
            self.update(y, p)

    def pooled(self) -> tuple[float, float]:
        if self.edges is None:
            self._cut()
        one_score = (self.low.min(axis=0) == self.high.max(axis=0)) | (self.counts.sum(axis=(0, 1)) == 0)
        return binned_auc(self.counts[1].sum(axis=0), self.counts[0].sum(axis=0), one_score)

    def per_column(self) -> tuple[float, float]:
        """The mean AUC over the columns with both classes, and the mean of their bounds."""
        if self.edges is None:
            self._cut()
        one_score = self.low == self.high
        aucs = [binned_auc(self.counts[1, k], self.counts[0, k], one_score[k]) for k in range(self.counts.shape[1])]
        ok = [a for a in aucs if not math.isnan(a[0])]
        if not ok:
            return NAN, 0.0
        return float(np.mean([a for a, _ in ok])), float(np.mean([b for _, b in ok]))


class _GroupSpill:
    """(group, score, label) records appended to ``GAUC_BUCKETS`` files by the group's hash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def update(self, y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> None:
        records = np.empty(len(y), _RECORD)
        records["group"], records["score"], records["label"] = groups.astype(np.int64).view(np.uint64), p, y > 0.5
        bucket = splitmix64(groups) % np.uint64(GAUC_BUCKETS)
        order = np.argsort(bucket, kind="stable")
        edges = np.searchsorted(bucket[order], np.arange(GAUC_BUCKETS + 1, dtype=np.uint64))
        for b in np.flatnonzero(np.diff(edges)):
            with open(self.folder / f"{b}.bin", "ab") as f:
                records[order[edges[b] : edges[b + 1]]].tofile(f)

    def buckets(self):
        """Each bucket's records: every row of its groups, in the order they came."""
        for path in sorted(self.folder.glob("*.bin")):
            yield np.fromfile(path, _RECORD)

    def ndcg(self) -> float:
        """NDCG@NDCG_K averaged over the groups with a positive, a bucket at a time."""
        total, count = 0.0, 0
        for r in self.buckets():
            n = np.unique(r["group"][r["label"] > 0]).size
            if n:
                total += n * task_metrics("binary", [NDCG], r["label"], r["score"], r["group"])[NDCG]
                count += n
        return total / count if count else NAN

    def gauc(self) -> float:
        weighted, size = 0.0, 0
        for r in self.buckets():
            auc_g, n_g = per_group_auc(r["label"], r["score"], r["group"])
            ok = ~np.isnan(auc_g)
            weighted += float((auc_g[ok] * n_g[ok]).sum())
            size += int(n_g[ok].sum())
        return weighted / size if size else NAN


class BoundedMetrics:
    """One task's named metrics, folded chunk by chunk (``update``) and read once (``result``).
    ``folder`` holds GAUC's spilled rows (a task of its own: the caller removes it after)."""

    def __init__(self, kind: str, names: list[str], folder: Path) -> None:
        self.kind, self.names = kind, names
        self.rows = 0
        self.sums: dict[str, float] = {}
        self.counts: np.ndarray | None = None  # confusion counts, by kind
        self.histogram: _Histogram | None = None
        self.spill = _GroupSpill(folder) if {"gauc", NDCG} & set(names) else None
        self.bound = 0.0  # the largest distance of a binned AUC from the exact one

    def update(self, y: np.ndarray, p: np.ndarray, groups: np.ndarray | None) -> None:
        if not len(y):
            return
        n = len(y)
        self.rows += n
        for name, fn in _MEANS.get(self.kind, {}).items():
            self.sums[name] = self.sums.get(name, 0.0) + fn(y, p) * n
        for name, value in self._sums(y, p).items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        counts = self._confusion(y, p)
        if counts is not None:
            self.counts = counts if self.counts is None else self.counts + counts
        if self.kind in ("binary", "multilabel"):
            if self.histogram is None:
                self.histogram = _Histogram(1 if p.ndim == 1 else p.shape[1])
            self.histogram.update(y, p)
        if self.spill is not None and groups is not None:
            self.spill.update(y, p, groups)

    def _sums(self, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        if self.kind == "binary":
            return {"p": float(np.sum(p, dtype=np.float64)), "y": float(np.sum(y, dtype=np.float64))}
        if self.kind == "regression":  # wape = sum |y - p| / sum |y|
            y, p = pair_1d(y, p)
            return {"abs_error": float(np.abs(y - p).sum()), "abs_y": float(np.abs(y).sum())}
        return {}

    def _confusion(self, y: np.ndarray, p: np.ndarray) -> np.ndarray | None:
        if self.kind == "binary":
            return np.array(binary.confusion(y, p))
        if self.kind == "multiclass":
            return multiclass.confusion_matrix(y, p)
        if self.kind == "multilabel":
            return np.stack(multilabel.counts(y, p))
        return None

    def result(self) -> dict[str, float]:
        return {name: self._value(name) for name in self.names}

    def _value(self, name: str) -> float:
        if not self.rows:
            return NAN
        means = _MEANS.get(self.kind, {})
        if name in means:
            return self.sums[name] / self.rows
        if name == "rmse":
            return math.sqrt(self.sums["mse"] / self.rows)
        if name == "wape":
            return self.sums["abs_error"] / self.sums["abs_y"] if self.sums["abs_y"] > 0 else NAN
        if name in ("gauc", NDCG):
            if self.spill is None or not any(self.spill.folder.iterdir()):
                return NAN
            return self.spill.gauc() if name == "gauc" else self.spill.ndcg()
        if name in ("auc", "micro_auc", "macro_auc"):
            assert self.histogram is not None
            value, bound = self.histogram.per_column() if name == "macro_auc" else self.histogram.pooled()
            self.bound = max(self.bound, bound)
            return value
        assert self.counts is not None
        if self.kind == "binary":
            if name == "calibration":
                return self.sums["p"] / self.sums["y"] if self.sums["y"] else NAN
            return binary.from_confusion(name, *(int(c) for c in self.counts))
        if self.kind == "multiclass":  # macro_f1
            return multiclass.macro_f1_of(self.counts)
        return (multilabel.micro_f1_of if name == "micro_f1" else multilabel.macro_f1_of)(*self.counts)
