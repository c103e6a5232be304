"""Vocabulary lookups: values -> vocabulary index + 1, 0 for unseen or missing.

Categorical ids usually arrive as integers. Casting them to strings and hashing them against the
vocabulary's strings cost about a second per 400k rows of 20 fields (one of 1M ids); an integer
column is instead looked up in an integer index of the vocabulary's integer entries (``"42"``;
never ``"042"`` or ``"4.0"``, which no integer's text equals), with exactly the result of the
string lookup. The index is built once per vocabulary and kept."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.data.columns import Where, as_strings

_INTEGER = r"^(0|-?[1-9][0-9]{0,18})$"  # the text of an integer of at most 19 digits, as int64 has
_INT64 = (-(2**63), 2**63 - 1)


class VocabLookup:
    """Index + 1 of each value in ``vocab`` (a list of strings), 0 where absent or null."""

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = vocab
        self._strings: pa.Array | None = None
        self._direct: np.ndarray | None = None  # value -> index + 1, for small non-negative integers
        self._keys: np.ndarray | None = None  # sorted integer entries, and their index + 1
        self._index: np.ndarray | None = None

    def strings(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """For string values."""
        if self._strings is None:
            self._strings = pa.array(self.vocab, pa.string())
        idx = pc.index_in(values, value_set=self._strings)
        return np.asarray(pc.add(idx, 1).fill_null(0), dtype=np.int64)

    def integers(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """For integer values: the same result as ``strings`` of their text, without the text."""
        if self._keys is None:
            self._build_integer_index()
        try:
            v = np.asarray(pc.fill_null(values, 0).cast(pa.int64()), dtype=np.int64)
        except pa.ArrowInvalid:  # uint64 beyond int64: rare enough for the text path
            return self.strings(pc.cast(values, pa.string()))
        valid = None if values.null_count == 0 else np.asarray(pc.is_valid(values))
        if self._direct is not None:
            inside = (v >= 0) & (v < len(self._direct))
            out = np.where(inside, self._direct[np.where(inside, v, 0)], 0)
        else:
            pos = np.minimum(np.searchsorted(self._keys, v), max(len(self._keys) - 1, 0))
            found = self._keys[pos] == v if len(self._keys) else np.zeros(len(v), bool)
            out = np.where(found, self._index[pos] if len(self._keys) else 0, 0)
        return out if valid is None else np.where(valid, out, 0)

    def _build_integer_index(self) -> None:
        text = pa.array(self.vocab, pa.string())
        is_int = np.asarray(pc.match_substring_regex(text, _INTEGER))
        digits = np.asarray(pc.utf8_length(text)) - np.asarray(pc.starts_with(text, "-"))
        for i in np.flatnonzero(is_int & (digits == 19)):  # 19 digits may lie beyond int64 (hashed ids do not)
            is_int[i] = _INT64[0] <= int(self.vocab[i]) <= _INT64[1]
        keys = np.asarray(pc.cast(text.filter(pa.array(is_int)), pa.int64()), dtype=np.int64)
        index = np.flatnonzero(is_int).astype(np.int64) + 1
        order = np.argsort(keys, kind="stable")
        self._keys, self._index = keys[order], index[order]
        if len(keys) and keys.min() >= 0 and keys.max() < 4 * len(keys) + 1024:
            self._direct = np.zeros(int(keys.max()) + 1, dtype=np.int64)
            self._direct[keys] = index


def lookup_column(look: VocabLookup, col: pa.ChunkedArray, name: str, where: Where) -> np.ndarray:
    """Index + 1 in ``look``'s vocabulary of each value of a single-valued column (0: absent or
    missing), compared as text as ``as_strings`` writes it; integers without the text."""
    if pa.types.is_integer(col.type):
        return look.integers(col)
    return look.strings(as_strings(col, name, where))
