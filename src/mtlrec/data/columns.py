"""Arrow column -> numpy conversions that check types and domains, with errors naming the file (or
table), column and first bad row as the user finds it (rows counted from 1, the header excluded),
and the bad value as they wrote it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.errors import DataError


@dataclass(frozen=True, eq=False)
class RowOrigin:
    """Where the rows of a table come from, so that an error names a row as the user finds it: row
    i of the table is data row ``index[i]`` (0-based) of ``name``; with ``index`` None, row i itself
    (the table is the file). ``take`` follows the table through a split or a filter."""

    name: str  # a file name ("train.csv"), or what else holds the rows ("synthetic data")
    index: np.ndarray | None = None  # [N] int64

    def take(self, rows: np.ndarray) -> RowOrigin:
        """The origin of ``table.take(rows)``; a boolean mask: of ``table.filter(rows)``."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        return RowOrigin(self.name, rows if self.index is None else self.index[rows])

    @classmethod
    def of(cls, where: Where) -> RowOrigin:
        """``where`` as a RowOrigin: a plain name is a table whose row i is row i."""
        return where if isinstance(where, RowOrigin) else cls(where)

    def row(self, i: int) -> str:
        """'train.csv row 1042': the table's row ``i`` (0-based) as the user counts it."""
        return f"{self.name} row {int(i if self.index is None else self.index[i]) + 1}"

    def __str__(self) -> str:
        return self.name


# What an error names: a RowOrigin, or a plain name whose row i is the table's row i (a file read as
# is, a request).
Where = str | RowOrigin


def shown(value: object) -> str:
    """A value as the user wrote it: text quoted ('N/A'), numbers plain (2, 2.5, nan, inf), never a
    numpy repr; None as 'a missing value'."""
    if value is None:
        return "a missing value"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e16 else repr(x)
    return repr(value)


def bad_value(where: Where, column: str, row: int, expected: str, got: object) -> DataError:
    """The error for the table's row ``row`` (0-based), e.g. column 'price' in train.csv row 1042:
    expected a number, got 'N/A'."""
    return DataError(f"column '{column}' in {RowOrigin.of(where).row(row)}: expected {expected}, got {shown(got)}")


def number_at(col: pa.ChunkedArray, values: np.ndarray, row: int) -> float | None:
    """What a bad cell held, for an error: the number read from ``col`` (``values``), or None where
    the cell is missing (read as nan)."""
    return values[row] if col[row].is_valid else None


def require_columns(table: pa.Table, columns: list[str], where: Where) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in table.column_names]
    if missing:
        have = ", ".join(table.column_names[:12]) + (" ..." if table.num_columns > 12 else "")
        raise DataError(f"{where}: missing column(s) {', '.join(repr(c) for c in missing)} (has: {have})")
    twice = [c for c in dict.fromkeys(columns) if table.column_names.count(c) > 1]
    if twice:
        raise DataError(f"{where}: column(s) {', '.join(repr(c) for c in twice)} appear more than once in the header")


def as_strings(col: pa.ChunkedArray, name: str, where: Where) -> pa.ChunkedArray:
    """A categorical column as strings (nulls stay null)."""
    if pa.types.is_nested(col.type):
        raise DataError(f"column '{name}' in {where}: expected single values, got a {col.type} column")
    if pa.types.is_floating(col.type):  # 3.0 -> "3", so ids read as floats match ids read as ints
        as_int = pc.cast(col, pa.int64(), safe=False)
        exact = pc.equal(pc.cast(as_int, col.type), col)
        col = pc.if_else(exact, pc.cast(as_int, pa.string()), pc.cast(col, pa.string()))
    try:
        return pc.cast(col, pa.string())
    except pa.ArrowInvalid:  # bytes that are not UTF-8 (the CSV reader keeps such a column as binary)
        for row, value in enumerate(col.to_pylist()):
            try:
                value is None or value.decode("utf-8")
            except (AttributeError, UnicodeDecodeError):
                raise bad_value(where, name, row, "UTF-8 text", value) from None
        raise


def as_float(col: pa.ChunkedArray, name: str, where: Where) -> np.ndarray:
    """A numeric column as float64; null -> NaN. Text that is not a number is an error."""
    if pa.types.is_nested(col.type):
        raise DataError(f"column '{name}' in {where}: expected numbers, got a {col.type} column")
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pc.utf8_trim_whitespace(col)
        ok = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i:nan|)$")
        bad = np.flatnonzero(~np.asarray(ok.fill_null(True)))
        if len(bad):
            raise bad_value(where, name, int(bad[0]), "a number", col[int(bad[0])].as_py())
        col = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"column '{name}' in {where}: expected numbers, got {col.type}") from None


def as_binary(col: pa.ChunkedArray, name: str, where: Where, mask: np.ndarray | None = None) -> np.ndarray:
    """A 0/1 label column as float32; rows outside ``mask`` are not checked and become 0."""
    values = as_float(col, name, where)  # booleans cast to 0.0 / 1.0
    check = values if mask is None else np.where(mask, values, 0.0)
    bad = np.flatnonzero(~((check == 0) | (check == 1)))
    if len(bad):
        raise bad_value(where, name, int(bad[0]), "a 0/1 label", number_at(col, values, int(bad[0])))
    return check.astype(np.float32)


def as_labels_in_range(
    col: pa.ChunkedArray, name: str, where: Where, n: int, mask: np.ndarray
) -> np.ndarray:
    """An integer class label in [0, n) as int64; rows outside ``mask`` become 0."""
    values = np.where(mask, as_float(col, name, where), 0.0)
    bad = np.flatnonzero(~((values >= 0) & (values < n) & (values == np.round(values))))
    if len(bad):
        got = number_at(col, values, int(bad[0]))
        raise bad_value(where, name, int(bad[0]), f"a class index in 0..{n - 1}", got)
    return values.astype(np.int64)


def as_lists(col: pa.ChunkedArray, name: str, where: Where, separator: str) -> pa.ListArray:
    """A multi-valued column (a list column, or text split on ``separator``) as list<string>;
    null -> empty list; empty tokens dropped."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_null(col.type) or pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        # text read from CSV whose rows all hold at most one value: the reader inferred numbers or nulls
        col = as_strings(pa.chunked_array([col], col.type), name, where).combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.split_pattern(col.cast(pa.string()), separator)
    elif not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        raise DataError(
            f"column '{name}' in {where}: expected a list or '{separator}'-separated text, got {col.type}"
        )
    col = col.fill_null(pa.scalar([], col.type))
    values = as_strings(pa.chunked_array([col.flatten()]), name, where).combine_chunks()
    lengths = np.asarray(pc.list_value_length(col).fill_null(0))
    keep = np.asarray(pc.and_(pc.is_valid(values), pc.not_equal(values, "")).fill_null(False))
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    kept_lengths = np.bincount(row_of[keep], minlength=len(lengths))
    offsets = np.concatenate([[0], np.cumsum(kept_lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.filter(pa.array(keep)))
