"""Readers (CSV and Parquet in, out, and their errors) and the train/valid/test splits."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mtlrec.config import SplitConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.readers import read_table, write_table
from mtlrec.data.split import SPLITS, split_indices, split_table
from mtlrec.errors import ConfigError, DataError

TABLE = pa.table(
    {
        "user_id": pa.array([3, 1, 2, 3, 5], pa.int64()),
        "price": pa.array([1.5, None, 2.25, 1e-7, 12345.678901], pa.float64()),
        "device": pa.array(["ios", "web", None, "android", "ios"]),
        "click": pa.array([0, 1, 0, 0, 1], pa.int64()),
    }
)


# -- readers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["data.csv", "data.parquet", "data.pq", "DATA.CSV"])
def test_write_then_read_round_trips(tmp_path, name):
    write_table(TABLE, tmp_path / name)
    back = read_table(tmp_path / name)
    assert back.schema == TABLE.schema
    assert back.to_pylist() == TABLE.to_pylist()  # nulls included: an empty CSV cell is missing
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_parquet_keeps_list_columns(tmp_path, shop_table):
    part = shop_table.slice(0, 50)
    write_table(part, tmp_path / "x.parquet")
    back = read_table(tmp_path / "x.parquet")
    assert back.schema == part.schema
    for name in part.column_names:
        if pa.types.is_floating(part[name].type):  # item_rating has NaN, and NaN != NaN
            np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(part[name]), err_msg=name)
        else:
            assert back[name].equals(part[name]), name


def test_csv_writes_list_columns_as_text_that_encodes_the_same(tmp_path, shop_table):
    from mtlrec.data.encode import Encoder
    from mtlrec.data.synthetic import default_schema

    part = shop_table.slice(0, 200)
    write_table(part, tmp_path / "x.csv")
    back = read_table(tmp_path / "x.csv")
    assert pa.types.is_string(back["recent_categories"].type)
    first = part["recent_categories"][0].as_py()
    assert back["recent_categories"][0].as_py() == "|".join(map(str, first))
    enc = Encoder(default_schema()).fit(part)
    a, b = enc.transform(part), enc.transform(back)
    assert a.seq.equal(b.seq) and a.cat.equal(b.cat)
    assert all(a.labels[t].equal(b.labels[t]) for t in a.labels)  # interests: '|' text too


def test_gzipped_csv_and_tsv(tmp_path):
    write_table(TABLE, tmp_path / "plain.csv")
    text = (tmp_path / "plain.csv").read_bytes()
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(text))
    assert read_table(tmp_path / "data.csv.gz").to_pylist() == TABLE.to_pylist()
    (tmp_path / "data.tsv").write_text("a\tb\n1\tx\n2\ty\n")
    assert read_table(tmp_path / "data.tsv").to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_csv_text_in_a_numeric_column_stays_text(tmp_path):
    """'N/A' must reach the encoder as text (and fail there, naming row and column), not be
    silently read as a missing value; an empty cell is missing."""
    (tmp_path / "d.csv").write_text("price,city\n1.5,\nN/A,NA\n,Paris\n")
    table = read_table(tmp_path / "d.csv")
    assert table["price"].to_pylist() == ["1.5", "N/A", None]
    assert table["city"].to_pylist()[0] is None


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "the file is empty"),
        ("empty.parquet", b"", "the file is empty"),
        ("header.csv", b"a,b,c\n", "header but no rows"),
        ("data.json", b'{"a": 1}', "unknown file type"),
        ("garbage.parquet", b"this is not parquet at all" * 10, "cannot read"),
        ("ragged.csv", b"a,b\n1,2\n3\n", "cannot read"),
    ],
)
def test_bad_files_are_data_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / 'nope.csv'}: no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path)


def test_write_with_an_unknown_suffix_names_the_file_and_writes_nothing(tmp_path):
    with pytest.raises(DataError, match=r"out\.xlsx: expected a \.csv or \.parquet"):
        write_table(TABLE, tmp_path / "out.xlsx")
    assert list(tmp_path.iterdir()) == []


# -- splits --------------------------------------------------------------------------------------
def assert_partition(parts: dict[str, np.ndarray], n: int) -> None:
    every = np.concatenate([parts[s] for s in SPLITS])
    assert len(every) == n
    assert np.array_equal(np.sort(every), np.arange(n))  # disjoint and covering


def test_random_split_is_seeded_disjoint_and_complete(shop_table):
    n = shop_table.num_rows
    cfg = SplitConfig(method="random", valid=0.1, test=0.2, seed=3)
    parts = split_indices(shop_table, cfg)
    assert_partition(parts, n)
    n_valid, n_test = round(n * cfg.valid), round(n * cfg.test)
    assert {s: len(v) for s, v in parts.items()} == {"train": n - n_valid - n_test, "valid": n_valid, "test": n_test}
    again = split_indices(shop_table, cfg)
    assert all(np.array_equal(parts[s], again[s]) for s in SPLITS)
    other = split_indices(shop_table, cfg.model_copy(update={"seed": 4}))
    assert not np.array_equal(parts["test"], other["test"])
    assert not np.array_equal(parts["test"], np.arange(n - n_test, n))  # shuffled, not the tail


def test_time_split_puts_the_latest_rows_in_test(shop_table):
    rng = np.random.default_rng(0)
    shuffled = shop_table.take(pa.array(rng.permutation(shop_table.num_rows)))
    cfg = SplitConfig(method="time", column="ts", valid=0.1, test=0.1)
    parts = split_indices(shuffled, cfg)
    assert_partition(parts, shuffled.num_rows)
    ts = np.asarray(shuffled["ts"])
    assert ts[parts["train"]].max() <= ts[parts["valid"]].min()
    assert ts[parts["valid"]].max() <= ts[parts["test"]].min()
    tables, _ = split_table(shuffled, cfg, "shop")
    assert pc.min(tables["test"]["ts"]).as_py() >= pc.max(tables["train"]["ts"]).as_py()


def test_time_split_by_thresholds_equals_the_rule_and_reads_dates_as_text(shop_table):
    ts = np.asarray(shop_table["ts"])
    valid_from, test_from = (float(v) for v in np.quantile(ts, [0.6, 0.8]))
    cfg = SplitConfig(method="time", column="ts", valid_from=valid_from, test_from=test_from)
    parts = split_indices(shop_table, cfg)
    want = np.where(ts >= test_from, 2, np.where(ts >= valid_from, 1, 0))
    assert all(np.array_equal(parts[s], np.flatnonzero(want == i)) for i, s in enumerate(SPLITS))
    days = pa.table({"day": pa.array(np.datetime64("2026-11-01") + np.arange(10) % 5, pa.date32())})
    by_day = split_indices(
        days, SplitConfig(method="time", column="day", valid_from="2026-11-04", test_from="2026-11-05")
    )
    assert [len(by_day[s]) for s in SPLITS] == [6, 2, 2]
    only_test = split_indices(days, SplitConfig(method="time", column="day", test_from="2026-11-05"))
    assert [len(only_test[s]) for s in SPLITS] == [8, 0, 2]


def test_time_thresholds_errors_name_the_setting_the_row_and_the_empty_split():
    with pytest.raises(ValueError, match="valid_from 5 comes after test_from 3"):
        SplitConfig(method="time", column="t", valid_from=5, test_from=3)
    with pytest.raises(ValueError, match="valid_from needs test_from"):
        SplitConfig(method="time", column="t", valid_from=5)
    with pytest.raises(ValueError, match="set method: time"):
        SplitConfig(method="hash", column="t", test_from=5)
    table = pa.table({"t": pa.array([1, 2, 3, 4], pa.int64())})
    with pytest.raises(ConfigError, match=r"data\.split\.test_from: 'soon' is not a value of column 't' \(int64\)"):
        split_indices(table, SplitConfig(method="time", column="t", test_from="soon"))
    with pytest.raises(DataError, match=r"^t\.csv has no test rows by t: none at or after test_from 9"):
        split_table(table, SplitConfig(method="time", column="t", test_from=9), "t.csv")
    gap = pa.table({"t": pa.array([1, None, 3], pa.int64())})
    with pytest.raises(DataError, match=r"t\.csv row 2: column 't' has no time"):
        split_table(gap, SplitConfig(method="time", column="t", test_from=2), "t.csv")


def test_user_split_never_shares_a_user(shop_table):
    users = shop_table["user_id"].to_pylist()
    users[:20] = [None] * 20  # rows without a user form one group of their own
    table = shop_table.set_column(shop_table.column_names.index("user_id"), "user_id", pa.array(users, pa.int64()))
    parts = split_indices(table, SplitConfig(method="user", column="user_id", valid=0.2, test=0.2, seed=1))
    assert_partition(parts, table.num_rows)
    owners = {s: set(np.asarray(table["user_id"].to_pylist(), dtype=object)[parts[s]]) for s in SPLITS}
    assert not owners["train"] & owners["valid"]
    assert not owners["train"] & owners["test"]
    assert not owners["valid"] & owners["test"]
    assert all(len(owners[s]) > 0 for s in SPLITS)


def test_split_errors_name_the_column(shop_table):
    with pytest.raises(DataError, match="no column 'when'"):
        split_indices(shop_table, SplitConfig(method="time", column="when"))
    with_null = pa.table({"ts": pa.array([1, None, 3], pa.int64())})
    with pytest.raises(DataError, match="column 'ts' has 1 missing"):
        split_indices(with_null, SplitConfig(method="time", column="ts"))
    with pytest.raises(DataError, match=r"^x\.csv has 2 rows: too few for a train split"):
        split_table(pa.table({"x": [1, 2]}), SplitConfig(valid=0.45, test=0.45), "x.csv")


def test_each_split_keeps_where_its_rows_are_in_the_file(shop_table):
    """Errors name a row by its file and row there, not by its position in a split."""
    table = shop_table.append_column("file_row", pa.array(np.arange(shop_table.num_rows)))
    for cfg in (SplitConfig(seed=3), SplitConfig(method="user", column="user_id", valid=0.2, test=0.2)):
        tables, origins = split_table(table, cfg, "shop.csv")
        for name in SPLITS:
            assert str(origins[name]) == "shop.csv"
            np.testing.assert_array_equal(origins[name].index, np.asarray(tables[name]["file_row"]))
            last = tables[name].num_rows - 1
            assert origins[name].row(last) == f"shop.csv row {tables[name]['file_row'][last].as_py() + 1}"


def test_a_filtered_table_keeps_its_rows_origin_through_the_split():
    """A filter before the split (e.g. dropped rows of a data set) shifts positions; the origin follows."""
    table = pa.table({"x": np.arange(20) * 10})
    keep = np.arange(20) % 3 != 0
    origin = RowOrigin("d.csv").take(keep)
    tables, origins = split_table(table.filter(pa.array(keep)), SplitConfig(valid=0.2, test=0.2), origin)
    for name in SPLITS:
        rows = np.asarray(tables[name]["x"]) // 10  # the file rows, 0-based
        assert [origins[name].row(i) for i in range(len(rows))] == [f"d.csv row {r + 1}" for r in rows]


@pytest.mark.parametrize(
    "cfg, message",
    [
        (SplitConfig(valid=0.05, test=0.2), "d.csv has 7 rows: too few for a valid split (data.split.valid 0.05 "
                                            "of them rounds to 0); add rows or set data.split.valid: 0"),
        (SplitConfig(valid=0.2, test=0.05), "d.csv has 7 rows: too few for a test split"),
        (SplitConfig(method="time", column="t", valid=0.2, test=0.05), "d.csv has 7 rows: too few for a test split"),
        (SplitConfig(method="user", column="u", valid=0.1, test=0.3),
         "d.csv has 3 'u' groups: too few for a valid split"),
    ],
)  # fmt: skip
def test_too_few_rows_for_a_split_name_the_data_and_the_fix(cfg, message):
    table = pa.table({"t": np.arange(7), "u": [1, 1, 2, 2, 3, 3, 3]})
    with pytest.raises(DataError) as err:
        split_table(table, cfg, "d.csv")
    assert str(err.value).startswith(message)


def test_a_split_of_share_zero_is_empty():
    tables, origins = split_table(pa.table({"x": np.arange(7)}), SplitConfig(valid=0.0, test=0.0), "d.csv")
    assert {name: t.num_rows for name, t in tables.items()} == {"train": 7, "valid": 0, "test": 0}
    assert len(origins["valid"].index) == 0
