"""Stable hashes: the same value hashes alike in every batch and type it arrives in; the hash split
puts the same keys in the same split whatever the row order; GAUC groups survive batching."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.config import SplitConfig
from mtlrec.data.encode import Encoder
from mtlrec.data.hashing import MISSING, split_codes, splitmix64, stable_hash
from mtlrec.data.split import split_table
from mtlrec.data.synthetic import default_schema


def test_splitmix64_known_answer():
    # the first output of splitmix64 seeded with 0 (Steele, Lea & Flood 2014; Vigna's reference code)
    assert int(splitmix64(np.array([0]))[0]) == 0xE220A8397B1DCDAF


def test_a_value_hashes_alike_whatever_its_type_and_batch():
    ints = stable_hash(pa.array([42, -7, None, 10**15]))
    text = stable_hash(pa.array(["42", "-7", None, str(10**15)]))
    floats = stable_hash(pa.array([42.0, -7.0, None, 1e15]))
    assert ints.tolist() == text.tolist() == floats.tolist()
    assert ints[2] == MISSING
    words = pa.array(["user-a", "user-b", "user-a", "", None])
    whole = stable_hash(words)
    parts = np.concatenate([stable_hash(words.slice(0, 2)), stable_hash(words.slice(2))])
    assert whole.tolist() == parts.tolist() and whole[0] == whole[2] != whole[1]
    blake = int.from_bytes(hashlib.blake2b(b"user-a", digest_size=8).digest(), "little")
    assert int(whole[0]) == blake  # no per-process salt: the same on every machine
    assert len(set(stable_hash(pa.array(np.arange(100_000))).tolist())) == 100_000


def test_split_codes_take_their_shares_and_follow_the_seed():
    keys = stable_hash(pa.array(np.arange(200_000)))
    codes = split_codes(keys, valid=0.1, test=0.2)
    share = np.bincount(codes, minlength=3) / len(codes)
    assert share == pytest.approx([0.7, 0.1, 0.2], abs=0.005)
    assert (split_codes(keys[::-1], 0.1, 0.2)[::-1] == codes).all()  # by key, not by position
    other = split_codes(keys, 0.1, 0.2, seed=1)
    assert 0.3 < (other != codes).mean() < 0.6


def test_the_hash_split_keeps_each_user_in_one_split_whatever_the_row_order(shop_table):
    cfg = SplitConfig(method="hash", column="user_id", valid=0.1, test=0.1)
    tables, _ = split_table(shop_table, cfg, "shop")
    users = {name: set(t["user_id"].to_pylist()) for name, t in tables.items()}
    assert not (users["train"] & users["valid"]) and not (users["train"] & users["test"])
    assert sum(t.num_rows for t in tables.values()) == shop_table.num_rows
    shuffled = shop_table.take(pa.array(np.random.default_rng(0).permutation(shop_table.num_rows)))
    again, _ = split_table(shuffled, cfg, "shop")
    assert {n: set(t["user_id"].to_pylist()) for n, t in again.items()} == users


def test_gauc_groups_are_the_same_in_every_batch(shop_table):
    encoder = Encoder(default_schema()).fit(shop_table)
    whole = encoder.transform(shop_table).groups
    halves = [encoder.transform(shop_table.slice(a, 3000)).groups for a in (0, 3000)]
    assert (np.concatenate(halves) == whole).all()
    users = np.asarray(shop_table["user_id"])
    first = {u: g for u, g in zip(users.tolist(), whole.tolist())}
    assert len(set(first.values())) == len(first)  # one group per user
