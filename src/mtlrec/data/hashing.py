"""Stable 64-bit hashes of column values: the same value gets the same hash in every batch, file,
run and machine (no Python ``hash``, whose strings are salted per process).

Used where rows are seen one batch at a time: GAUC's groups (a user's rows in two batches must be
one group) and the hash split (a user, request or row id decides its split, whichever file and
batch it is read in). A value hashes by its text as a categorical's vocabulary would hold it
(``as_strings``: ``3``, ``3.0`` and ``"3"`` are one value); integers take a vectorised path
(splitmix64 of the integer), and so does text that spells an integer, so that ``42`` and ``"42"``
agree; other text is hashed with BLAKE2b, once per distinct value of a batch."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.data.columns import as_strings

_INTEGER = r"^-?[0-9]{1,18}$"  # text of an integer that int64 holds
MISSING = np.uint64(0x9E3779B97F4A7C15)  # the hash of a missing value


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of int64 values, as uint64 (a bijection: no collisions)."""
    z = x.astype(np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stable_hash(col: pa.Array | pa.ChunkedArray, name: str = "column", where: str = "data") -> np.ndarray:
    """[N] uint64 hashes of a column's values (nulls: MISSING)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    valid = np.asarray(col.is_valid())
    if pa.types.is_integer(col.type):
        out = splitmix64(np.asarray(col.fill_null(0).cast(pa.int64())))
        return np.where(valid, out, MISSING)
    text = as_strings(pa.chunked_array([col]), name, where).combine_chunks()
    integer = np.asarray(pc.match_substring_regex(text, _INTEGER).fill_null(False))
    out = np.full(len(text), MISSING, dtype=np.uint64)
    if integer.any():
        out[integer] = splitmix64(np.asarray(pc.cast(text.filter(pa.array(integer)), pa.int64())))
    other = valid & ~integer
    if other.any():
        encoded = pc.dictionary_encode(text.filter(pa.array(other)))
        keys = np.fromiter((_blake(v) for v in encoded.dictionary.to_pylist()), dtype=np.uint64,
                           count=len(encoded.dictionary))  # fmt: skip
        out[other] = keys[np.asarray(encoded.indices)]
    return out


def _blake(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def unit_interval(hashes: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats in [0, 1), uniformly spread (the top 53 bits)."""
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_codes(hashes: np.ndarray, valid: float, test: float, seed: int = 0) -> np.ndarray:
    """[N] int8: 0 train, 1 valid, 2 test, by the hash of each row's key (salted by ``seed``):
    the share ``test`` of the keys goes to test and ``valid`` to valid, the same keys on every run."""
    u = unit_interval(splitmix64((hashes ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF)).view(np.int64)))
    return np.where(u < test, 2, np.where(u < test + valid, 1, 0)).astype(np.int8)
