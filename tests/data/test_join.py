"""Side tables joined onto log rows: keys compared as text across types, missing values and counts
for rows without a match, the log's own columns kept, and the errors that name file, key and rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.data.columns import RowOrigin
from mtlrec.data.join import Joiner, SideTable
from mtlrec.errors import ConfigError, DataError

USERS = pa.table({"user_id": [3, 1, 2], "age": [30.0, 10.0, None], "city": ["c", "a", "b"]})


KEYS = [pa.array([1, 3, 9, None]), pa.array([1.0, 3.0, 9.0, None]), pa.array(["1", "3", "9", None])]


@pytest.mark.parametrize("keys", KEYS, ids=["int", "float", "text"])
def test_keys_match_as_text_and_rows_without_one_get_missing_values(keys):
    joiner = Joiner([SideTable.of(USERS, "users.csv", "user_id")])
    out = joiner(pa.table({"user_id": keys, "click": [1, 0, 1, 0]}), "log.csv")
    assert out.column_names == ["user_id", "click", "age", "city"]
    assert out["age"].to_pylist() == [10.0, 30.0, None, None] and out["city"].to_pylist() == ["a", "c", None, None]
    assert (joiner.rows, joiner.unmatched) == (4, [2])
    assert "2 of 4 log rows (50.0%) find no match for their 'user_id' there" in joiner.report()[0]


def test_text_keys_in_the_side_table_match_integer_ids_in_the_log():
    side = SideTable.of(pa.table({"item_id": ["7", "42"], "brand": ["x", "y"]}), "items.csv", "item_id")
    out, missed = side.join(pa.table({"item_id": [42, 7, 8]}), "log.csv")
    assert out["brand"].to_pylist() == ["y", "x", None] and missed == 1


def test_the_logs_own_columns_win_and_columns_choose_what_is_taken():
    side = SideTable.of(USERS, "users.csv", "user_id", columns=["city"])
    out, _ = side.join(pa.table({"user_id": [1, 2], "city": ["own", "own"]}), "log.csv")
    assert out.column_names == ["user_id", "city"] and out["city"].to_pylist() == ["own", "own"]


def test_a_stream_reader_joins_each_piece_with_rows_named_by_their_file():
    joiner = Joiner([SideTable.of(USERS, "users.csv", "user_id")])

    def read(piece, columns):  # two tables of one "file", as read_piece gives them
        assert columns.count("user_id") == 1  # the key is read once, asked for or not
        yield pa.table({"user_id": [1, 2]}), 0
        yield pa.table({"user_id": [5]}), 2

    class Piece:
        name = "part-1.parquet"

    assert next(joiner.reader(read)(Piece(), ["user_id", "city"]))[0].num_rows == 2
    tables = [t for t, _ in joiner.reader(read)(Piece(), ["city"])]
    assert [t.column_names for t in tables] == [["user_id", "city"]] * 2  # only the columns asked for
    assert pa.concat_tables(tables)["city"].to_pylist() == ["a", "b", None] and joiner.unmatched == [1]
    assert joiner.rows == 5  # the two rows of the first read, then these three


def test_errors_name_file_key_and_rows():
    twice = pa.table({"user_id": [1, 2, 1], "age": [1, 2, 3]})
    with pytest.raises(DataError, match=r"^users.csv: key 'user_id' value 1 is on more than one row \(rows 1 and 3\)"):
        SideTable.of(twice, "users.csv", "user_id")
    with pytest.raises(DataError, match=r"^column 'user_id' in users.csv row 2: expected a key, got a missing value"):
        SideTable.of(pa.table({"user_id": [1, None], "age": [1, 2]}), "users.csv", "user_id")
    with pytest.raises(DataError, match=r"users.csv \(a side table keyed by 'uid'\): missing column\(s\) 'uid'"):
        SideTable.of(USERS, "users.csv", "uid")
    side = SideTable.of(USERS, "users.csv", "user_id")
    with pytest.raises(DataError, match=r"^part-3.parquet: no column 'user_id' to join users.csv on \(has: click\)"):
        side.join(pa.table({"click": [1]}), RowOrigin("part-3.parquet", np.arange(1)))
    with pytest.raises(ConfigError, match="column 'city' is in users.csv and in shops.csv"):
        Joiner([side, SideTable.of(pa.table({"shop": [1], "city": ["z"]}), "shops.csv", "shop")])


def test_a_sources_own_splits_are_joined_each():
    from mtlrec.data.sources import Source

    splits = {name: pa.table({"user_id": ids}) for name, ids in (("train", [1, 2]), ("valid", [3]), ("test", [7]))}
    origins = {name: RowOrigin(f"{name}.csv") for name in splits}
    source = Source(pa.concat_tables(splits.values()), None, RowOrigin("data set"), splits, origins)
    joiner = Joiner([SideTable.of(USERS, "users.csv", "user_id")])
    joined = joiner.join_source(source)
    assert {name: t["city"].to_pylist() for name, t in joined.splits.items()} == {
        "train": ["a", "b"], "valid": ["c"], "test": [None]}  # fmt: skip
    assert joined.table["city"].to_pylist() == ["a", "b", "c", None] and joiner.unmatched == [1]
