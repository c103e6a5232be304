"""Vocabularies from value counts: which values of a categorical or sequence feature get an index.

A vocabulary is chosen from counts (every value seen, with how often), which the encoder keeps, so
that a later run can grow it: the values it already has keep their index, and values whose count,
carried over plus new, now passes ``min_count`` are appended (``Encoder.grow``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.spec import FeatureSpec


def value_counts(values: pa.Array) -> dict[str, int]:
    """{value: how often it occurs} of a string array, nulls left out."""
    counts = pc.value_counts(values.drop_null())
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


def add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for value, n in b.items():
        out[value] = out.get(value, 0) + n
    return out


def vocabulary(counts: dict[str, int], spec: FeatureSpec, known: Sequence[str] = ()) -> list[str]:
    """``known`` in its order, then the other values seen at least ``min_count`` times, most
    frequent first (ties by value), up to ``max_size`` values in all."""
    have = set(known)
    vals = np.asarray([v for v in counts if v not in have], dtype=object)
    freq = np.asarray([counts[v] for v in vals], dtype=np.int64)
    keep = freq >= spec.min_count
    vals, freq = vals[keep], freq[keep]
    order = np.lexsort((vals.astype(str), -freq))
    if spec.max_size is not None:
        order = order[: max(spec.max_size - len(known), 0)]
    return [*known, *(str(v) for v in vals[order])]
