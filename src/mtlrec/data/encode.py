"""Encoder: fit on the train split (vocabularies, fill values, scaling, the classes of multiclass and
multilabel tasks), apply to any split or to new rows, save as JSON. Unseen and missing categories
map to index 0."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pydantic
import torch

from mtlrec.data.batches import EncodedData
from mtlrec.data.classes import ClassCounts, choose_classes, class_indices, multi_hot
from mtlrec.data.columns import (
    RowOrigin,
    Where,
    as_binary,
    as_float,
    as_labels_in_range,
    as_lists,
    as_strings,
    bad_value,
    number_at,
    require_columns,
)
from mtlrec.data.hashing import stable_hash
from mtlrec.data.lookup import VocabLookup, lookup_column
from mtlrec.data.vocab import value_counts, vocabulary
from mtlrec.errors import DataError, RunError
from mtlrec.spec import FeatureSpec, InputLayout, Schema, TaskSpec

FORMAT = 1


def feature_numbers(col: pa.ChunkedArray, f: FeatureSpec, where: Where) -> np.ndarray:
    """A numeric feature as float64 (NaN = missing); infinities would poison the scaling."""
    x = as_float(col, f.source, where)
    bad = np.flatnonzero(np.isinf(x))
    if len(bad):
        raise bad_value(where, f.source, int(bad[0]), "a finite number", x[bad[0]])
    return x


def feature_values(col: pa.ChunkedArray, f: FeatureSpec, where: Where) -> pa.Array:
    """A categorical or sequence column's values as one string array (what vocabularies count)."""
    if f.kind == "sequence":
        return as_lists(col, f.source, where, f.separator).flatten()
    return as_strings(col, f.source, where).combine_chunks()


def sample_space(table: pa.Table, t: TaskSpec, where: Where) -> np.ndarray:
    """[N] bool: the rows of ``t``'s sample space (all rows, or where its ``where`` label is 1)."""
    return as_binary(table[t.where], t.where, where).astype(bool) if t.where else np.ones(table.num_rows, bool)


def _has_labels(table: pa.Table, t: TaskSpec) -> bool:
    return t.source in table.column_names and (not t.where or t.where in table.column_names)


def regression_labels(schema: Schema, table: pa.Table, where: Where) -> Iterator[tuple[TaskSpec, np.ndarray]]:
    """Each regression task's labels (after its transform, float64) over its sample space, for the
    tasks whose columns ``table`` has: what their standardisation is fitted on."""
    for t in schema.tasks:
        if t.kind != "regression" or not _has_labels(table, t):
            continue
        mask = sample_space(table, t, where)
        yield t, Encoder.label_values(table[t.source], t, mask, where)[mask].astype(np.float64)


def target_scale(task: TaskSpec, n: int, mean: float, std: float) -> tuple[float, float]:
    """(shift, scale) of a regression task's label, from ``n`` train labels of this ``mean`` and
    ``std``; the model learns (label - shift) / scale. Standardised (mean, std), so that every
    label's scale is the same; a poisson task's counts are only divided by their mean (0, mean),
    which keeps them counts (>= 0, 0 where 0) and makes the model's output log(rate / mean): a
    model whose output starts near 0 starts near the mean rate. A zero spread or mean gives 1."""
    if task.loss_name == "poisson":
        return 0.0, mean if n and mean > 0 else 1.0
    return (mean if n else 0.0), (std if n and std > 0 else 1.0)


def count_classes(schema: Schema, table: pa.Table, where: Where, counts: dict[str, ClassCounts]) -> None:
    """Add ``table``'s labels of each task in ``counts`` (multiclass and multilabel ones) whose
    columns it has: what their classes are chosen from."""
    for t in schema.tasks:
        if t.name in counts and _has_labels(table, t):
            counts[t.name].add(table[t.source], t, sample_space(table, t, where), where)


def class_counters(schema: Schema) -> dict[str, ClassCounts]:
    return {t.name: ClassCounts() for t in schema.tasks if t.kind in ("multiclass", "multilabel")}


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class Encoder:
    """Turns raw tables into EncodedData. Fitted state ends in ``_`` and round-trips through JSON."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.vocabs_: dict[str, list[str]] = {}
        self.numeric_: dict[str, dict[str, float | bool]] = {}
        self.targets_: dict[str, tuple[float, float]] = {}  # regression task -> (mean, std) of its label
        self.counts_: dict[str, dict[str, int]] = {}  # categorical/sequence feature -> {value: times seen}
        # multiclass/multilabel task whose labels are values -> its classes (absent: labels are indices)
        self.classes_: dict[str, list[str]] = {}
        self._lookups: dict[str, VocabLookup] = {}  # built on first use from vocabs_ (tasks: from classes_)

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, table: pa.Table, where: Where = "train") -> "Encoder":
        require_columns(table, [f.source for f in self.schema.features], where)
        for f in self.schema.features:
            col = table[f.source]
            if f.kind == "numeric":
                self.numeric_[f.name] = self._fit_numeric(feature_numbers(col, f, where), f)
            else:
                self.counts_[f.name] = value_counts(feature_values(col, f, where))
                self.vocabs_[f.name] = vocabulary(self.counts_[f.name], f)
        self._fit_targets(table, where)
        counts = class_counters(self.schema)
        count_classes(self.schema, table, where, counts)
        return self.set_classes(counts)

    def set_classes(self, counts: dict[str, ClassCounts]) -> "Encoder":
        """Each multiclass/multilabel task's classes from its train labels (data/classes.py), and the
        schema's ``n_classes`` resolved from them."""
        resolved = {}
        for name, seen in counts.items():
            classes, resolved[name] = choose_classes(self.schema.task(name), seen)
            if classes is not None:
                self.classes_[name] = classes
        self.schema = self.schema.with_n_classes(resolved)
        return self

    def class_names(self, task: str) -> list[str] | None:
        """The class names of a task whose labels are values (``rating`` -> ["1", ..., "5"]);
        None for labels that are class indices (and for other tasks)."""
        return self.classes_.get(task)

    def grow(self, table: pa.Table, where: Where = "train") -> "Encoder":
        """A copy whose vocabularies grew by ``table``'s values: every value this encoder knows keeps
        its index; the counts of ``table`` are added to the kept counts, and values not yet in the
        vocabulary whose count now passes ``min_count`` are appended, most frequent first, while
        ``max_size`` leaves room. Numeric scaling and regression targets stay this encoder's (a
        model is tied to them)."""
        from mtlrec.data.fitting import EncoderFit

        return EncoderFit(self.schema, start=self).update(table, where).finish()

    def _fit_targets(self, table: pa.Table, where: Where) -> None:
        """Mean and std of each regression label (after its transform) over its sample space, so the
        model learns standardised targets whatever their scale."""
        for t, y in regression_labels(self.schema, table, where):
            moments = (float(y.mean()), float(y.std())) if len(y) else (0.0, 0.0)
            self.targets_[t.name] = target_scale(t, len(y), *moments)

    @staticmethod
    def _fit_numeric(x: np.ndarray, f: FeatureSpec) -> dict[str, float | bool]:
        missing = np.isnan(x)
        if missing.all():
            raise DataError(f"feature '{f.name}': column '{f.source}' has no values in the train split")
        fill = float(np.mean(x[~missing])) if f.fill is None else float(f.fill)
        z = np.where(missing, fill, x)
        if f.transform == "log1p":
            z = signed_log1p(z)
        indicator = bool(missing.any()) if f.missing_indicator is None else f.missing_indicator
        std = float(np.std(z))
        return {
            "fill": fill,
            "mean": float(np.mean(z)),
            "std": std if std > 0 else 1.0,
            "min": float(np.min(z)),
            "max": float(np.max(z)),
            "indicator": indicator,
        }

    @property
    def fitted(self) -> bool:
        return bool(self.vocabs_ or self.numeric_)

    def layout(self) -> InputLayout:
        feats = self.schema.features
        cats = [f for f in feats if f.kind == "categorical"]
        seqs = [f for f in feats if f.kind == "sequence"]
        dense: list[str] = []
        for f in feats:
            if f.kind == "numeric":
                dense.append(f.name)
                if self.numeric_[f.name]["indicator"]:
                    dense.append(f"{f.name}__missing")
        return InputLayout(
            cat_names=tuple(f.name for f in cats),
            cat_sizes=tuple(len(self.vocabs_[f.name]) + 1 for f in cats),
            seq_names=tuple(f.name for f in seqs),
            seq_sizes=tuple(len(self.vocabs_[f.name]) + 1 for f in seqs),
            seq_lens=tuple(f.max_len for f in seqs),
            dense_names=tuple(dense),
        )

    # -- transforming ------------------------------------------------------------------------
    def transform(self, table: pa.Table, *, labels: bool = True, where: Where = "data") -> EncodedData:
        """Encode features (and, when ``labels``, the tasks' labels and sample-space masks)."""
        if not self.fitted:
            raise RuntimeError("Encoder.transform called before fit")
        n = table.num_rows
        require_columns(table, self.schema.columns(labels), where)
        feats = self.schema.features
        cat = [self._categorical(table[f.source], f, where) for f in feats if f.kind == "categorical"]
        seq = [self._sequence(table[f.source], f, where) for f in feats if f.kind == "sequence"]
        dense = [c for f in feats if f.kind == "numeric" for c in self.numeric_columns(table[f.source], f, where)]
        width = max((s.shape[1] for s in seq), default=0)
        seq_arr = np.zeros((n, len(seq), width), dtype=np.int64)
        for i, s in enumerate(seq):
            seq_arr[:, i, : s.shape[1]] = s
        ys, masks = self._labels(table, where) if labels else ({}, {})
        groups = None
        if self.schema.group and self.schema.group in table.column_names:  # the same user, the same id, in any batch
            groups = stable_hash(table[self.schema.group], self.schema.group, str(where)).view(np.int64)
        return EncodedData(
            cat=torch.from_numpy(np.stack(cat, 1) if cat else np.zeros((n, 0), np.int64)),
            seq=torch.from_numpy(seq_arr),
            dense=torch.from_numpy(
                np.stack(dense, 1).astype(np.float32) if dense else np.zeros((n, 0), np.float32)
            ),
            labels=ys,
            masks=masks,
            groups=groups,
            targets=dict(self.targets_),
        )

    def numeric_columns(self, col: pa.ChunkedArray, f: FeatureSpec, where: Where) -> list[np.ndarray]:
        """A numeric feature's input columns, as training saw them: the value (filled, transformed,
        scaled) and, when the train split had missing values, the missing flag."""
        s = self.numeric_[f.name]
        x = feature_numbers(col, f, where)
        missing = np.isnan(x)
        z = np.where(missing, s["fill"], x)
        if f.transform == "log1p":
            z = signed_log1p(z)
        if f.transform in ("standardize", "log1p"):
            z = (z - s["mean"]) / s["std"]
        elif f.transform == "minmax":
            z = (z - s["min"]) / max(s["max"] - s["min"], 1e-12)
        return [z, missing.astype(np.float64)] if s["indicator"] else [z]

    def _vocab_lookup(self, name: str, vocabs: dict[str, list[str]] | None = None) -> VocabLookup:
        vocab = (self.vocabs_ if vocabs is None else vocabs)[name]
        key = name if vocabs is None else f"task {name}"
        look = self._lookups.get(key)
        if look is None or look.vocab is not vocab:
            look = self._lookups[key] = VocabLookup(vocab)
        return look

    def _categorical(self, col: pa.ChunkedArray, f: FeatureSpec, where: Where) -> np.ndarray:
        return lookup_column(self._vocab_lookup(f.name), col, f.source, where)

    def _sequence(self, col: pa.ChunkedArray, f: FeatureSpec, where: Where) -> np.ndarray:
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_list(col.type) and pa.types.is_integer(col.type.value_type) and col.null_count == 0 \
                and col.flatten().null_count == 0:  # fmt: skip
            lists = col  # integer ids, no missing values: no text needed (same result)
            ids = self._vocab_lookup(f.name).integers(col.flatten())
        else:
            lists = as_lists(col, f.source, where, f.separator)
            ids = self._vocab_lookup(f.name).strings(lists.flatten())
        offsets = np.asarray(lists.offsets)
        offsets = offsets - offsets[0]
        lengths = np.diff(offsets)
        out = np.zeros((len(lengths), f.max_len), dtype=np.int64)
        if len(lengths) and (lengths == lengths[0]).all():  # every list as long: a reshape (same result)
            width = min(int(lengths[0]), f.max_len)
            out[:, :width] = ids.reshape(len(lengths), int(lengths[0]))[:, :width]
            return out
        row = np.repeat(np.arange(len(lengths)), lengths)
        pos = np.arange(len(ids)) - offsets[row]
        keep = pos < f.max_len
        out[row[keep], pos[keep]] = ids[keep]
        return out

    def _labels(self, table: pa.Table, where: Where) -> tuple[dict, dict]:
        ys: dict[str, torch.Tensor] = {}
        masks: dict[str, torch.Tensor] = {}
        for t in self.schema.tasks:
            mask = sample_space(table, t, where)
            if t.name in self.classes_:
                look = self._vocab_lookup(t.name, self.classes_)
                read = class_indices if t.kind == "multiclass" else multi_hot
                y = read(look, table[t.source], t, mask, where)
            else:
                y = self.label_values(table[t.source], t, mask, where)
            if t.name in self.targets_:
                mean, std = self.targets_[t.name]
                y = np.where(mask, (y - mean) / std, 0.0).astype(np.float32)
            ys[t.name] = torch.from_numpy(y)
            masks[t.name] = torch.from_numpy(mask)
        return ys, masks

    @staticmethod
    def label_values(col: pa.ChunkedArray, t: TaskSpec, mask: np.ndarray, where: Where) -> np.ndarray:
        """A task's labels, checked against its kind inside the sample space ``mask``; a log1p
        regression target comes back transformed, not yet standardised."""
        name = t.source
        if t.kind == "binary":
            return as_binary(col, name, where, mask)
        if t.kind == "multiclass":
            return as_labels_in_range(col, name, where, t.n_classes, mask)
        if t.kind == "multilabel":
            lists = as_lists(col, name, where, t.separator)
            lengths = np.diff(np.asarray(lists.offsets))
            row = np.repeat(np.arange(len(lengths)), lengths)  # each label's row
            labels_at = RowOrigin.of(where).take(row)  # errors name the label's row
            flat = as_float(pa.chunked_array([lists.flatten()]), name, labels_at)
            bad = np.flatnonzero(~((flat >= 0) & (flat < t.n_classes) & (flat == np.round(flat))) & mask[row])
            if len(bad):
                raise bad_value(labels_at, name, int(bad[0]), f"label indices in 0..{t.n_classes - 1}", flat[bad[0]])
            out = np.zeros((len(lengths), t.n_classes), dtype=np.float32)
            ok = mask[row]
            out[row[ok], flat[ok].astype(np.int64)] = 1.0
            return out
        y = np.where(mask, as_float(col, name, where), 0.0)
        low = -1.0 if t.transform == "log1p" else -np.inf
        ok = np.isfinite(y) & (y > low)
        if t.loss_name == "poisson":
            ok &= y >= 0
        bad = np.flatnonzero(~ok)
        if len(bad):
            expected = "a number > -1 (log1p target)" if t.transform == "log1p" else "a finite number"
            expected = "a count >= 0 (loss poisson)" if t.loss_name == "poisson" else expected
            raise bad_value(where, name, int(bad[0]), expected, number_at(col, y, int(bad[0])))
        return (np.log1p(y) if t.transform == "log1p" else y).astype(np.float32)

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "schema": dataclasses.asdict(self.schema),
            "vocabularies": self.vocabs_,
            "numeric": self.numeric_,
            "targets": self.targets_,
        }
        if self.classes_:  # absent in runs whose labels are all class indices (and in older runs)
            out["classes"] = self.classes_
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "encoder") -> "Encoder":
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r} is not {FORMAT}")
            enc = cls(pydantic.TypeAdapter(Schema).validate_python(d["schema"]))
            enc.vocabs_ = {k: [str(v) for v in vs] for k, vs in d["vocabularies"].items()}
            enc.numeric_ = {k: dict(v) for k, v in d["numeric"].items()}
            enc.targets_ = {k: (float(v[0]), float(v[1])) for k, v in d.get("targets", {}).items()}
            enc.classes_ = {k: [str(v) for v in vs] for k, vs in d.get("classes", {}).items()}
            for f in enc.schema.features:
                state = enc.numeric_ if f.kind == "numeric" else enc.vocabs_
                if f.name not in state:
                    raise ValueError(f"no fitted state for feature '{f.name}'")
            for name, classes in enc.classes_.items():
                if len(classes) != enc.schema.task(name).n_classes:
                    raise ValueError(f"task '{name}' has n_classes {enc.schema.task(name).n_classes} but "
                                     f"{len(classes)} classes")  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError, pydantic.ValidationError) as err:
            raise RunError(f"{where}: not a valid encoder ({str(err).splitlines()[0]})") from None
        return enc

    def save(self, path: str | Path) -> None:
        from mtlrec.artifacts import write_text

        write_text(path, json.dumps(self.to_dict()))

    def save_counts(self, path: str | Path) -> None:
        """Every categorical and sequence value seen, with its count: what ``grow`` adds to. Kept
        apart from encoder.json, which serving reads, because it outgrows the vocabularies."""
        from mtlrec.artifacts import write_text

        write_text(path, json.dumps({"format": FORMAT, "counts": self.counts_}))

    def load_counts(self, path: str | Path) -> "Encoder":
        from mtlrec.artifacts import read_json

        d = read_json(path)
        try:
            self.counts_ = {k: {str(v): int(n) for v, n in c.items()} for k, c in d["counts"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise RunError(f"{path}: not valid value counts ({err})") from None
        return self

    @classmethod
    def load(cls, path: str | Path) -> "Encoder":
        from mtlrec.artifacts import read_json

        return cls.from_dict(read_json(path), where=str(path))
