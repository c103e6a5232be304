"""Split a table into train / valid / test: at random, by time, by user (whole groups), or by the
hash of a column (the same keys in the same split on every run, batch by batch: data/hashing.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.config import SplitConfig
from mtlrec.data.columns import RowOrigin, Where
from mtlrec.data.hashing import split_codes, stable_hash
from mtlrec.errors import DataError

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


def split_indices(table: pa.Table, cfg: SplitConfig) -> dict[str, np.ndarray]:
    n = table.num_rows
    rng = np.random.default_rng(cfg.seed)
    if cfg.method == "random":
        return {k: np.sort(v) for k, v in _cut(rng.permutation(n), cfg).items()}
    if cfg.column not in table.column_names:
        raise DataError(f"split by {cfg.method}: no column '{cfg.column}' in the data")
    column = table[cfg.column]
    if cfg.method == "time":
        if column.null_count:
            raise DataError(f"split by time: column '{cfg.column}' has {column.null_count} missing values")
        return _cut(np.asarray(pc.sort_indices(column)), cfg)
    if cfg.method == "hash":
        codes = split_codes(stable_hash(column, cfg.column), cfg.valid, cfg.test, cfg.seed)
        return {name: np.flatnonzero(codes == i) for i, name in enumerate(SPLITS)}
    groups = np.asarray(pc.dictionary_encode(column).combine_chunks().indices.fill_null(-1))
    parts = _cut(rng.permutation(groups.max() + 2) - 1, cfg)  # -1 = missing group
    which = np.empty(groups.max() + 2, dtype=np.int8)
    for i, name in enumerate(SPLITS):
        which[parts[name] + 1] = i
    row_part = which[groups + 1]
    return {name: np.flatnonzero(row_part == i) for i, name in enumerate(SPLITS)}


def split_table(
    table: pa.Table, cfg: SplitConfig, origin: Where
) -> tuple[dict[str, pa.Table], dict[str, RowOrigin]]:
    """The train/valid/test tables, and where each one's rows come from (``origin``: the table's).
    A split with a share in ``cfg`` that gets no rows is a DataError naming the data and the fix."""
    origin = RowOrigin.of(origin)
    parts = split_indices(table, cfg)
    _check_sizes(table, cfg, origin, parts)
    tables = {name: table.take(pa.array(idx)) for name, idx in parts.items()}
    return tables, {name: origin.take(idx) for name, idx in parts.items()}


def _check_sizes(table: pa.Table, cfg: SplitConfig, origin: RowOrigin, parts: dict[str, np.ndarray]) -> None:
    """Every split with a share gets rows; else a DataError saying how many there are and what to set."""
    shares = {"train": 1.0 - cfg.valid - cfg.test, "valid": cfg.valid, "test": cfg.test}
    empty = [name for name, share in shares.items() if share > 0 and not len(parts[name])]
    if not empty:
        return
    name = empty[0]
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
