"""Python values (a JSON request's) -> the model's input tensors, as ``Encoder.transform`` makes them
from a table, without the arrow round trip: a dict lookup per categorical value instead of building
a hash set of the vocabulary on every call. Tested equal to ``Encoder.transform``.

Values: categorical str | int | None (or a float, where a numeric feature reads the same column),
numeric float | None, sequence list[str | int] | str | None,
as a validated request holds them. A column is a list with one value per row, or ``Same(value)``
for a value every row shares (a request's user or context features), which is encoded once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mtlrec.data.batches import TensorBatch
from mtlrec.data.encode import Encoder
from mtlrec.spec import FeatureSpec


@dataclass(frozen=True)
class Same:
    """One value for every row."""

    value: Any


Column = Sequence[Any] | Same


_INT_TEXT = re.compile(r"0|-?[1-9][0-9]{0,99}")  # an int's decimal text (ASCII digits only)
_FLOAT_TEXT = re.compile(r"-?[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?")  # what arrow writes for a finite float


def value_index(vocabulary: list[str]) -> dict[str | int | float, int]:
    """Value -> id (vocabulary position + 1). A value that is an int's decimal text is also keyed by
    the int, so that ``3`` finds ``"3"`` as arrow's int -> string cast does, without converting; one
    that is the text arrow's float -> string cast writes for a float (``as_strings``: ``"3.5"``) is
    keyed by that float (a number field that a categorical feature reads too)."""
    index: dict[str | int | float, int] = {}
    floats: list[tuple[int, str]] = []
    for i, v in enumerate(vocabulary):
        index[v] = i + 1
        if _INT_TEXT.fullmatch(v):
            index[int(v)] = i + 1
        elif _FLOAT_TEXT.fullmatch(v):
            floats.append((i, v))
    if floats:
        values = pa.array([float(v) for _, v in floats], pa.float64())
        for (i, v), x, text in zip(floats, values.to_pylist(), pc.cast(values, pa.string()).to_pylist()):
            if text == v and not x.is_integer():  # as_strings writes 2.0 and -0.0 as ints: "2", "0"
                index.setdefault(x, i + 1)
    return index


def _ids(value: Any, index: dict[str | int, int], separator: str, max_len: int) -> list[int]:
    """A sequence value (a list, a ``separator``-joined string or None) as the ids of its first
    ``max_len`` non-empty tokens."""
    if value is None:
        return []
    items = value.split(separator) if isinstance(value, str) else value
    return [index.get(t, 0) for t in items if t is not None and t != ""][:max_len]


class ColumnEncoder:
    """Encodes {column: values} with a fitted ``encoder``'s vocabularies and numeric state.

    Unseen and missing (None) categories -> 0; missing numerics -> the train fill value plus the
    missing flag, as in training."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        features = encoder.schema.features
        self.categorical = [
            (f.source, value_index(encoder.vocabs_[f.name])) for f in features if f.kind == "categorical"
        ]
        self.sequence = [(f, value_index(encoder.vocabs_[f.name])) for f in features if f.kind == "sequence"]
        self.numeric = [f for f in features if f.kind == "numeric"]
        self.width = max((f.max_len for f, _ in self.sequence), default=0)

    def encode(self, columns: Mapping[str, Column], n: int) -> TensorBatch:
        """The input tensors of ``n`` rows; every feature's column must be in ``columns``."""
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, (name, index) in enumerate(self.categorical):
            col = columns[name]
            cat[:, j] = index.get(col.value, 0) if isinstance(col, Same) else [index.get(v, 0) for v in col]
        seq = np.zeros((n, len(self.sequence), self.width), dtype=np.int64)
        for j, (f, index) in enumerate(self.sequence):
            col = columns[f.source]
            if isinstance(col, Same):
                ids = _ids(col.value, index, f.separator, f.max_len)
                seq[:, j, : len(ids)] = ids
                continue
            rows = [_ids(v, index, f.separator, f.max_len) for v in col]
            lengths = np.fromiter(map(len, rows), np.int64, n)
            row = np.repeat(np.arange(n), lengths)
            pos = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            seq[row, j, pos] = [i for ids in rows for i in ids]
        dense = [self._numeric(columns[f.source], f, n) for f in self.numeric]
        flat = [c for cs in dense for c in cs]
        return TensorBatch(
            cat=torch.from_numpy(cat),
            seq=torch.from_numpy(seq),
            dense=torch.from_numpy(np.stack(flat, 1).astype(np.float32) if flat else np.zeros((n, 0), np.float32)),
            labels={},
            masks={},
        )

    def _numeric(self, col: Column, f: FeatureSpec, n: int) -> list[np.ndarray]:
        values = [col.value] if isinstance(col, Same) else col
        x = np.array(values, dtype=np.float64)  # None -> NaN
        parts = self.encoder.numeric_columns(pa.chunked_array([pa.array(x)]), f, "request")  # the training transform
        return [np.broadcast_to(p, (n,)) for p in parts] if isinstance(col, Same) else parts
