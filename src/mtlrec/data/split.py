"""Split a table into train / valid / test: at random, by time, by user (whole groups), or by the
hash of a column (the same keys in the same split on every run, batch by batch: data/hashing.py)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.config import SplitConfig
from mtlrec.data.columns import RowOrigin, Where
from mtlrec.data.hashing import split_codes, stable_hash
from mtlrec.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")


def _cut(order: np.ndarray, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """The last ``test`` fraction of ``order`` is test, the ``valid`` fraction before it valid."""
    n = len(order)
    n_test = int(round(n * cfg.test))
    n_valid = int(round(n * cfg.valid))
    n_train = n - n_test - n_valid
    return {
        "train": order[:n_train],
        "valid": order[n_train : n_train + n_valid],
        "test": order[n_train + n_valid :],
    }


def split_indices(table: pa.Table, cfg: SplitConfig, origin: Where = "data") -> dict[str, np.ndarray]:
    n = table.num_rows
    rng = np.random.default_rng(cfg.seed)
    if cfg.method == "random":
        return {k: np.sort(v) for k, v in _cut(rng.permutation(n), cfg).items()}
    if cfg.column not in table.column_names:
        raise DataError(f"split by {cfg.method}: no column '{cfg.column}' in the data")
    column = table[cfg.column]
    if cfg.method == "time" and cfg.thresholds:
        return _indices(time_codes(column, cfg, origin))
    if cfg.method == "time":
        if column.null_count:
            raise DataError(f"split by time: column '{cfg.column}' has {column.null_count} missing values")
        return _cut(np.asarray(pc.sort_indices(column)), cfg)
    if cfg.method == "hash":
        return _indices(split_codes(stable_hash(column, cfg.column), cfg.valid, cfg.test, cfg.seed))
    groups = np.asarray(pc.dictionary_encode(column).combine_chunks().indices.fill_null(-1))
    parts = _cut(rng.permutation(groups.max() + 2) - 1, cfg)  # -1 = missing group
    which = np.empty(groups.max() + 2, dtype=np.int8)
    for i, name in enumerate(SPLITS):
        which[parts[name] + 1] = i
    return _indices(which[groups + 1])


def _indices(codes: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.flatnonzero(codes == i) for i, name in enumerate(SPLITS)}


def time_codes(column: pa.ChunkedArray | pa.Array, cfg: SplitConfig, origin: Where) -> np.ndarray:
    """[N] int8 split of each row by ``cfg``'s thresholds: 2 (test) from test_from on, 1 (valid)
    from valid_from on, else 0 (train). A missing time is a DataError naming its row."""
    origin = RowOrigin.of(origin)
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if col.null_count:
        row = int(np.flatnonzero(~np.asarray(col.is_valid()))[0])
        raise DataError(f"{origin.row(row)}: column '{cfg.column}' has no time; a split by time needs one in every row")
    codes = np.zeros(len(col), dtype=np.int8)
    for code, key in ((1, "valid_from"), (2, "test_from")):
        value = getattr(cfg, key)
        if value is not None:
            codes[np.asarray(pc.greater_equal(col, _threshold(value, col.type, cfg.column, key)))] = code
    return codes


def _threshold(value: int | float | str, kind: pa.DataType, column: str, key: str) -> pa.Scalar:
    """``value`` as a scalar of the column's type (text read as a date or time where the column is one)."""
    if isinstance(value, str) and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return pa.scalar(value, kind)
    try:
        if isinstance(value, float) and pa.types.is_integer(kind):
            value = math.ceil(value)  # an integer time at or after 2.5 is one at or after 3
        return pa.scalar(value).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
        raise ConfigError(
            f"data.split.{key}: {value!r} is not a value of column '{column}' ({kind}); give a number or text "
            f"the column's type reads ({err})"
        ) from None


def split_table(
    table: pa.Table, cfg: SplitConfig, origin: Where
) -> tuple[dict[str, pa.Table], dict[str, RowOrigin]]:
    """The train/valid/test tables, and where each one's rows come from (``origin``: the table's).
    A split with a share in ``cfg`` that gets no rows is a DataError naming the data and the fix."""
    origin = RowOrigin.of(origin)
    parts = split_indices(table, cfg, origin)
    _check_sizes(table, cfg, origin, parts)
    tables = {name: table.take(pa.array(idx)) for name, idx in parts.items()}
    return tables, {name: origin.take(idx) for name, idx in parts.items()}


def _check_sizes(table: pa.Table, cfg: SplitConfig, origin: RowOrigin, parts: dict[str, np.ndarray]) -> None:
    """Every split with a share gets rows; else a DataError saying how many there are and what to set."""
    shares = {"train": 1.0 - cfg.valid - cfg.test, "valid": cfg.valid, "test": cfg.test}
    if cfg.thresholds:
        shares = {"train": 1.0, "valid": 0.0 if cfg.valid_from is None else 1.0, "test": 1.0}
    empty = [name for name, share in shares.items() if share > 0 and not len(parts[name])]
    if not empty:
        return
    name = empty[0]
    if cfg.thresholds:
        raise DataError(f"{origin} has no {name} rows by {cfg.column}: {_window(cfg, name)}; move the thresholds")
    if cfg.method == "user":
        groups = len(pc.unique(table[cfg.column]))
        has, gives = f"has {_count(groups, f'{cfg.column!r} group')}", "gives none with rows"
    else:
        has, gives = f"has {_count(table.num_rows, 'row')}", "rounds to 0"
    if name == "train":
        raise DataError(
            f"{origin} {has}: too few for a train split (data.split.valid {cfg.valid} and data.split.test "
            f"{cfg.test} take them all); add rows or lower data.split.valid and data.split.test"
        )
    raise DataError(
        f"{origin} {has}: too few for a {name} split (data.split.{name} {shares[name]} of them {gives}); "
        f"add rows or set data.split.{name}: 0"
    )


def _window(cfg: SplitConfig, name: str) -> str:
    """The times a split's rows have: 'at or after test_from 2026-11-29', ..."""
    first = cfg.valid_from if cfg.valid_from is not None else cfg.test_from
    return {
        "train": f"none before {first!r}",
        "valid": f"none from valid_from {cfg.valid_from!r} to before test_from {cfg.test_from!r}",
        "test": f"none at or after test_from {cfg.test_from!r}",
    }[name]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
