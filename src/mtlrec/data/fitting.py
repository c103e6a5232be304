"""Fitting an encoder in one bounded pass, a batch of rows at a time (``update``), then ``finish``:
for data that does not fit in memory. Memory is the vocabularies' counts and a few numbers per
numeric feature and regression task, whatever the number of rows.

- categorical and sequence features: value counts, added batch by batch; the vocabulary is chosen
  from them at the end exactly as ``Encoder.fit`` chooses it (data/vocab.py).
- numeric features: the observed values' count and mean (the default fill), and the count, mean,
  sum of squared deviations, min and max of their transformed values, merged batch by batch (Chan
  et al.'s parallel variance). At the end the missing rows join at the transformed fill value, so
  the mean and std are those of the filled column, as ``Encoder.fit`` computes them (equal up to
  float rounding: about 1e-15 relative).
- regression labels: mean and std over the task's sample space, merged the same way.
- multiclass and multilabel labels: their distinct values, from which the classes are chosen at
  the end as ``Encoder.fit`` chooses them (data/classes.py).

``start``: an encoder whose vocabularies grow instead (a warm start): its counts are the starting
counts, its values keep their indices, and its numeric scaling and regression targets stay as
they are (a model is tied to them), so nothing numeric is accumulated; its classes stay too."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mtlrec.data.columns import Where, require_columns
from mtlrec.data.encode import (
    Encoder,
    class_counters,
    count_classes,
    feature_numbers,
    feature_values,
    regression_labels,
    signed_log1p,
    target_scale,
)
from mtlrec.data.vocab import add_counts, value_counts, vocabulary
from mtlrec.errors import DataError
from mtlrec.spec import FeatureSpec, Schema


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of a stream of numbers."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        mean = float(np.mean(x))
        m2 = float(np.sum((x - mean) ** 2))
        n = self.n + len(x)
        delta = mean - self.mean
        self.mean += delta * len(x) / n
        self.m2 += m2 + delta * delta * self.n * len(x) / n
        self.n = n
        self.low, self.high = min(self.low, float(np.min(x))), max(self.high, float(np.max(x)))

    def merge(self, other: "Moments") -> None:
        """Add another stream's moments (Chan et al.)."""
        if not other.n:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    def with_constant(self, value: float, count: int) -> "Moments":
        """These moments with ``count`` more values equal to ``value``."""
        out = Moments(self.n, self.mean, self.m2, self.low, self.high)
        out.add(np.full(count, value))
        return out

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.n)) if self.n else 0.0


class EncoderFit:
    """Accumulates what an Encoder is fitted from, over batches of the train rows."""

    def __init__(self, schema: Schema, start: Encoder | None = None) -> None:
        self.schema, self.start = schema, start
        self.counts: dict[str, dict[str, int]] = {}
        for f in schema.features:
            if f.kind != "numeric":
                kept = start.counts_.get(f.name) or dict.fromkeys(start.vocabs_[f.name], 0) if start else None
                self.counts[f.name] = dict(kept) if kept else {}
        self.initial = {name: dict(c) for name, c in self.counts.items()}  # a warm start's counts
        self.observed = {f.name: Moments() for f in schema.features if f.kind == "numeric"}  # raw values
        self.scaled = {f.name: Moments() for f in schema.features if f.kind == "numeric"}  # transformed
        self.missing = {f.name: 0 for f in schema.features if f.kind == "numeric"}
        self.targets = {t.name: Moments() for t in schema.tasks if t.kind == "regression"}
        self.classes = class_counters(schema)
        self.rows = 0

    def update(self, table: pa.Table, where: Where = "train") -> "EncoderFit":
        """Add a batch of train rows."""
        require_columns(table, [f.source for f in self.schema.features], where)
        self.rows += table.num_rows
        for f in self.schema.features:
            col = table[f.source]
            if f.kind != "numeric":
                self.counts[f.name] = add_counts(self.counts[f.name], value_counts(feature_values(col, f, where)))
            elif self.start is None:
                x = feature_numbers(col, f, where)
                seen = x[~np.isnan(x)]
                self.missing[f.name] += len(x) - len(seen)
                self.observed[f.name].add(seen)
                self.scaled[f.name].add(signed_log1p(seen) if f.transform == "log1p" else seen)
        if self.start is None:
            self._update_labels(table, where)
        return self

    def _update_labels(self, table: pa.Table, where: Where) -> None:
        for t, y in regression_labels(self.schema, table, where):
            self.targets[t.name].add(y)
        count_classes(self.schema, table, where, self.classes)

    def state(self) -> dict:
        """What this fit added (JSON): what ``merge`` of another pass takes. Several processes
        each fit on some of the pieces and merge every state in one order (data/stream.py)."""
        added = {name: {v: n - self.initial[name].get(v, 0) for v, n in c.items() if n > self.initial[name].get(v, 0)}
                 for name, c in self.counts.items()}  # fmt: skip
        moments = lambda ms: {k: dataclasses.astuple(m) for k, m in ms.items()}  # noqa: E731
        return {"rows": self.rows, "counts": added, "observed": moments(self.observed), "scaled": moments(self.scaled),
                "missing": self.missing, "targets": moments(self.targets),
                "classes": {k: c.state() for k, c in self.classes.items()}}  # fmt: skip

    def merge(self, state: dict) -> "EncoderFit":
        """Add another pass's ``state`` (its rows counted after these)."""
        self.rows += state["rows"]
        for name, counts in state["counts"].items():
            self.counts[name] = add_counts(self.counts[name], counts)
        for key in ("observed", "scaled", "targets"):
            for name, values in state[key].items():
                getattr(self, key)[name].merge(Moments(*values))
        for name, n in state["missing"].items():
            self.missing[name] += n
        for name, classes in state["classes"].items():
            self.classes[name].merge(classes)
        return self

    def finish(self) -> Encoder:
        enc = Encoder(self.schema)
        for f in self.schema.features:
            if f.kind != "numeric":
                enc.counts_[f.name] = self.counts[f.name]
                known = self.start.vocabs_[f.name] if self.start else ()
                enc.vocabs_[f.name] = vocabulary(self.counts[f.name], f, known=known)
        if self.start is not None:
            enc.numeric_, enc.targets_ = dict(self.start.numeric_), dict(self.start.targets_)
            enc.classes_ = dict(self.start.classes_)
            return enc
        for f in self.schema.features:
            if f.kind == "numeric":
                enc.numeric_[f.name] = self._numeric(f)
        for name, m in self.targets.items():
            if m.n:
                enc.targets_[name] = target_scale(self.schema.task(name), m.n, m.mean, m.std)
        return enc.set_classes(self.classes)

    def _numeric(self, f: FeatureSpec) -> dict[str, float | bool]:
        observed, missing = self.observed[f.name], self.missing[f.name]
        if observed.n == 0:
            raise DataError(f"feature '{f.name}': column '{f.source}' has no values in the train split")
        fill = observed.mean if f.fill is None else float(f.fill)
        value = float(signed_log1p(np.array(fill))) if f.transform == "log1p" else fill
        z = self.scaled[f.name].with_constant(value, missing)
        indicator = missing > 0 if f.missing_indicator is None else f.missing_indicator
        return {"fill": fill, "mean": z.mean, "std": z.std if z.std > 0 else 1.0, "min": z.low, "max": z.high,
                "indicator": bool(indicator)}  # fmt: skip
