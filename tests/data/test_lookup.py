"""Vocabulary lookups: integer ids take an integer index and must give exactly what the lookup of
their text gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.data.encode import Encoder
from mtlrec.data.lookup import VocabLookup
from mtlrec.spec import FeatureSpec, Schema, TaskSpec


def naive(values: list, vocab: list[str]) -> list[int]:
    where = {v: i + 1 for i, v in enumerate(vocab)}
    return [0 if v is None else where.get(str(v), 0) for v in values]


@pytest.mark.parametrize(
    "vocab",
    [
        ["3", "0", "17", "5"],  # small non-negative ids: a direct table
        ["123456789012", "-4", "7", "99999999999999"],  # sparse and negative: a sorted index
        ["007", "7", "1.0", "abc", "", "-0", "12"],  # text no integer prints as: never matched
        [],
    ],
)
def test_integer_lookup_equals_the_text_lookup(vocab):
    rng = np.random.default_rng(0)
    values = [int(x) for x in rng.integers(-5, 25, 200)] + [123456789012, 99999999999999, -4, None, 0]
    look = VocabLookup(vocab)
    got = look.integers(pa.chunked_array([pa.array(values[:100]), pa.array(values[100:])]))
    assert got.tolist() == naive(values, vocab)
    text = pa.array([None if v is None else str(v) for v in values])
    assert look.strings(text).tolist() == naive(values, vocab)


def test_nineteen_digit_ids_are_found_and_texts_beyond_int64_are_not_integers():
    """Hashed ids fill int64's 19 digits; a 19-digit text past int64's range is no int64's text."""
    vocab = ["1234567890123456789", "7", str(2**63 - 1), str(-(2**63)), "9999999999999999999", "-9300000000000000000"]
    values = [1234567890123456789, 2**63 - 1, -(2**63), 7, 5, None]
    look = VocabLookup(vocab)
    assert look.integers(pa.chunked_array([pa.array(values, pa.int64())])).tolist() == naive(values, vocab) == [
        1, 3, 4, 2, 0, 0
    ]


def test_unsigned_ids_beyond_int64_take_the_text_path():
    look = VocabLookup(["18446744073709551615", "3"])
    got = look.integers(pa.array([2**64 - 1, 3, 4], pa.uint64()))
    assert got.tolist() == [1, 2, 0]


def test_encoder_gives_the_same_ids_for_integer_and_text_columns():
    schema = Schema(
        features=(FeatureSpec(name="item", kind="categorical"), FeatureSpec(name="recent", kind="sequence", max_len=3)),
        tasks=(TaskSpec(name="click", kind="binary"),),
    )
    ints = pa.table({
        "item": pa.array([5, 9, None, 5, 1000]),
        "recent": pa.array([[1, 2], [], [2, 2, 3, 4], [7], [1]], pa.list_(pa.int64())),
        "click": [0, 1, 0, 1, 0],
    })  # fmt: skip
    text = pa.table({
        "item": pa.array(["5", "9", None, "5", "1000"]),
        "recent": pa.array([["1", "2"], [], ["2", "2", "3", "4"], ["7"], ["1"]]),
        "click": [0, 1, 0, 1, 0],
    })  # fmt: skip
    enc = Encoder(schema).fit(ints.slice(0, 4))  # 1000 and 7 unseen
    a, b = enc.transform(ints), enc.transform(text)
    assert a.cat.tolist() == b.cat.tolist() and a.seq.tolist() == b.seq.tolist()
    assert a.cat[:, 0].tolist() == [1, 2, 0, 1, 0]  # 5 most frequent, 9 next; missing and unseen -> 0
    assert a.seq[2, 0].tolist() == [1, 1, 3]  # ids by frequency: 2, 1, then 3 and 4 (ties by text); cut at 3
