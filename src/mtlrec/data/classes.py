"""Class labels as users have them: the classes of a multiclass or multilabel task are the values
of its label column in the train split (ratings 1-5, department names), or class indices 0..K-1.

**Which.** Labels that are the class indices (integers in 0..n_classes-1, or without ``n_classes``
exactly 0..K-1) stay indices, read as they always were. Any other labels are values: the classes
are the distinct values of the train split's sample space, in order (numbers by value, else text
by text), and ``n_classes``, when given, must agree with how many there are. Values are compared
as text as the encoder reads categories (``5.0`` is ``"5"``).

**Reading.** A multiclass label is one value per row; a multilabel label is a list column, or text
of values joined by the task's ``separator`` (``"Dresses|Skirts"``), as the index labels were.
A value outside the classes, in any split, is an error naming its file, row and the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa

from mtlrec.data.columns import RowOrigin, Where, as_lists, as_strings, bad_value, shown
from mtlrec.data.lookup import VocabLookup, lookup_column
from mtlrec.errors import DataError
from mtlrec.spec import TaskSpec

_INDEX = re.compile(r"0|[1-9][0-9]{0,17}")  # the text of a class index
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
SHOWN = 10  # classes an error lists before "... (K in all)"


def label_values(col: pa.ChunkedArray, t: TaskSpec, mask: np.ndarray, where: Where) -> tuple[pa.Array, np.ndarray]:
    """The labels of the rows inside ``mask`` as text, each with its row: one per row (multiclass)
    or one per listed value (multilabel). Missing labels are left out."""
    if t.kind == "multiclass":
        values = as_strings(col, t.source, where).combine_chunks()
        rows = np.arange(len(values))
    else:
        lists = as_lists(col, t.source, where, t.separator)
        values = lists.flatten()
        rows = np.repeat(np.arange(len(lists)), np.diff(np.asarray(lists.offsets)))
    keep = mask[rows] & np.asarray(values.is_valid())
    return values.filter(pa.array(keep)), rows[keep]


@dataclass
class ClassCounts:
    """The distinct label values of a task seen so far, with where each was first seen (what an
    error names): added batch by batch over the train rows."""

    first: dict[str, tuple[int, str]] = field(default_factory=dict)  # value -> (position seen, 'file row N')
    seen: int = 0

    def add(self, col: pa.ChunkedArray, t: TaskSpec, mask: np.ndarray, where: Where) -> None:
        values, rows = label_values(col, t, mask, where)
        origin = RowOrigin.of(where)
        coded = values.dictionary_encode()  # the dictionary in order of first appearance
        codes, at = np.unique(np.asarray(coded.indices), return_index=True)
        for value, i in zip(coded.dictionary.take(pa.array(codes)).to_pylist(), at.tolist()):
            if value not in self.first:
                self.first[value] = (self.seen + int(rows[i]), origin.row(int(rows[i])))
        self.seen += len(mask)

    def state(self) -> dict:
        """What ``merge`` takes (JSON)."""
        return {"first": {v: list(at) for v, at in self.first.items()}, "seen": self.seen}

    def merge(self, state: dict) -> None:
        """Add the values another pass over other rows saw (``state``), as if its rows came after
        these."""
        for value, (position, where) in state["first"].items():
            if value not in self.first:
                self.first[value] = (self.seen + position, where)
        self.seen += state["seen"]


def _order(values: Sequence[str]) -> list[str]:
    """Numbers by value (1, 2, 10), anything else by text."""
    if all(_NUMBER.fullmatch(v) for v in values):
        return sorted(values, key=lambda v: (float(v), v))
    return sorted(values)


def choose_classes(t: TaskSpec, counts: ClassCounts) -> tuple[list[str] | None, int]:
    """(None, K) for labels that are class indices 0..K-1, else (the class names in order, K)."""
    values = list(counts.first)
    index = sorted(int(v) for v in values if _INDEX.fullmatch(v))
    all_index = len(index) == len(values)
    if t.n_classes is not None:
        if all_index and (not index or index[-1] < t.n_classes):
            return None, t.n_classes
        if len(values) == t.n_classes:
            return _order(values), t.n_classes
        bad = [v for v in values if not (_INDEX.fullmatch(v) and int(v) < t.n_classes)]
        value = min(bad, key=lambda v: counts.first[v][0])
        what = "a class index" if t.kind == "multiclass" else "label indices"
        raise DataError(
            f"column '{t.source}' in {counts.first[value][1]}: expected {what} in 0..{t.n_classes - 1}, got "
            f"{shown(float(value) if _NUMBER.fullmatch(value) else value)} (task '{t.name}' has n_classes "
            f"{t.n_classes}, but the train split has {len(values)} distinct labels; leave out n_classes to "
            f"take the train split's labels as the classes)"
        )
    if all_index and index == list(range(len(index))) and len(index) >= 2:
        return None, len(index)
    if len(values) < 2:
        found = f"only {shown(values[0])}" if values else "no labels"
        raise DataError(f"task '{t.name}': column '{t.source}' has {found} in the train split; "
                        f"a {t.kind} task needs at least 2 classes")  # fmt: skip
    return _order(values), len(values)


def listed(classes: Sequence[str]) -> str:
    """'the train split's classes (a, b, c)', the list cut after SHOWN classes."""
    names = ", ".join(classes[:SHOWN]) + (f", ... ({len(classes)} in all)" if len(classes) > SHOWN else "")
    return f"the train split's classes ({names})"


def class_indices(look: VocabLookup, col: pa.ChunkedArray, t: TaskSpec, mask: np.ndarray, where: Where) -> np.ndarray:
    """A multiclass label of named classes (``look``: over the classes) as int64 indices [N]; rows
    outside ``mask`` become 0. A value not among the classes (or missing) is an error."""
    ids = lookup_column(look, col, t.source, where)
    bad = np.flatnonzero(mask & (ids == 0))
    if len(bad):
        raise bad_value(where, t.source, int(bad[0]), f"one of {listed(look.vocab)}", col[int(bad[0])].as_py())
    return np.where(mask, ids - 1, 0)


def multi_hot(look: VocabLookup, col: pa.ChunkedArray, t: TaskSpec, mask: np.ndarray, where: Where) -> np.ndarray:
    """A multilabel label of named classes as [N, K] float32 0/1; rows outside ``mask`` are 0."""
    lists = as_lists(col, t.source, where, t.separator)
    lengths = np.diff(np.asarray(lists.offsets))
    row = np.repeat(np.arange(len(lengths)), lengths)
    ids = look.strings(lists.flatten())
    bad = np.flatnonzero((ids == 0) & mask[row])
    if len(bad):
        at = RowOrigin.of(where).take(row)
        value = lists.flatten()[int(bad[0])].as_py()
        raise bad_value(at, t.source, int(bad[0]), f"labels among {listed(look.vocab)}", value)
    out = np.zeros((len(lengths), len(look.vocab)), dtype=np.float32)
    ok = mask[row]
    out[row[ok], ids[ok] - 1] = 1.0
    return out
