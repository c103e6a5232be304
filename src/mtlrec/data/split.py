"""Split a table into train / valid / test: at random, by time, or by user (whole groups)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.config import SplitConfig
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
    groups = np.asarray(pc.dictionary_encode(column).combine_chunks().indices.fill_null(-1))
    parts = _cut(rng.permutation(groups.max() + 2) - 1, cfg)  # -1 = missing group
    which = np.empty(groups.max() + 2, dtype=np.int8)
    for i, name in enumerate(SPLITS):
        which[parts[name] + 1] = i
    row_part = which[groups + 1]
    return {name: np.flatnonzero(row_part == i) for i, name in enumerate(SPLITS)}


def split_table(table: pa.Table, cfg: SplitConfig) -> dict[str, pa.Table]:
    parts = split_indices(table, cfg)
    if len(parts["train"]) == 0:
        raise DataError(f"split: no training rows out of {table.num_rows}")
    return {name: table.take(pa.array(idx)) for name, idx in parts.items()}
