"""Data as users have it, end to end through train, predict, evaluate and serve: class labels as
values (names, 1-based ratings, multilabel names) learn exactly what their class indices learn, and
side tables joined by key (in memory and in a stream) learn exactly what the hand-joined table does;
a service fed only ids answers as one fed whole rows."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from mtlrec.cli.main import main
from mtlrec.data.synthetic import SEGMENTS, default_schema, simulate
from mtlrec.serve.app import create_app
from mtlrec.serve.predictor import Predictor

ITEM = ["category", "brand", "price", "item_rating"]  # attributes of an item in the simulated shop
USER = ["user_price_pref", "user_activity"]  # attributes of a user
DROPPED_ITEMS = 5  # items left out of items.parquet: their log rows find no match


def first_rows(table: pa.Table, key: str, columns: list[str]) -> pa.Table:
    _, first = np.unique(table[key].to_numpy(), return_index=True)
    return table.select([key, *columns]).take(pa.array(np.sort(first)))


def hand_join(log: pa.Table, side: pa.Table, key: str) -> pa.Table:
    """Arrow's own left join, in the log's row order: the reference the side tables must equal."""
    rows = pa.table({"_row": np.arange(log.num_rows), key: log[key]})  # (arrow joins no list columns)
    joined = rows.join(side, key, join_type="left outer").sort_by("_row")
    for name in side.column_names[1:]:
        log = log.append_column(name, joined[name])
    return log


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_data")
    table = simulate(rows=3000, users=200, items=150, seed=3)
    items = first_rows(table, "item_id", ITEM)
    items = items.slice(DROPPED_ITEMS)
    pq.write_table(items, root / "items.parquet")
    pacsv.write_csv(first_rows(table, "user_id", USER), root / "users.csv")
    users = pacsv.read_csv(root / "users.csv")  # as mtlrec reads it
    log = table.drop_columns(ITEM + USER)
    pq.write_table(log, root / "log.parquet")
    hand = hand_join(hand_join(log, items, "item_id"), users, "user_id")
    pq.write_table(hand, root / "hand.parquet")
    for name, t in (("log", log), ("hand", hand)):  # the same rows as two parts each, to stream
        (root / f"{name}-parts").mkdir()
        pq.write_table(t.slice(0, 1700), root / f"{name}-parts" / "a.parquet")
        pq.write_table(t.slice(1700), root / f"{name}-parts" / "b.parquet")
    unmatched = int(np.isin(log["item_id"].to_numpy(), first_rows(table, "item_id", ITEM)["item_id"].to_numpy()
                            [:DROPPED_ITEMS]).sum())  # fmt: skip
    return root, table, log, hand, unmatched


def train(root, name, data: dict, tiny: dict, schema=None, capsys=None) -> tuple:
    """Train a run of the tiny config on ``data``: (its metrics, what it printed on stderr)."""
    raw = copy.deepcopy(tiny)
    raw["data"] = {"source": "file", **data}
    raw["schema"] = schema or dataclasses.asdict(default_schema())
    (root / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    if capsys is not None:
        capsys.readouterr()
    assert main(["train", str(root / f"{name}.yaml"), "--out", str(root / name)]) == 0
    said = capsys.readouterr().err if capsys is not None else ""
    return json.loads((root / name / "metrics.json").read_text()), said


JOIN = [{"path": "items.parquet", "on": "item_id"}, {"path": "users.csv", "on": "user_id"}]


def joins(root):
    return [{**j, "path": str(root / j["path"])} for j in JOIN]


# -- side tables -----------------------------------------------------------------------------------
def test_side_tables_learn_what_the_hand_joined_table_learns(shop, tiny_config_shared, capsys):
    root, _, _, _, unmatched = shop
    want, _ = train(root, "hand", {"path": str(root / "hand.parquet")}, tiny_config_shared)
    got, said = train(root, "joined", {"path": str(root / "log.parquet"), "join": joins(root)}, tiny_config_shared,
                      capsys=capsys)  # fmt: skip
    assert got == want
    assert 0 < unmatched < 3000
    assert (f"warning: data.join items.parquet: {unmatched:,} of 3,000 log rows ({unmatched / 3000:.1%}) find no "
            "match for their 'item_id' there; their items.parquet columns are missing values") in said  # fmt: skip
    assert "users.csv" not in said
    side = json.loads((root / "joined" / "side.json").read_text())["tables"]
    assert [(t["name"], t["on"], t["unmatched"], t["log_rows"]) for t in side] == [
        ("items.parquet", "item_id", unmatched, 3000), ("users.csv", "user_id", 0, 3000)]  # fmt: skip
    assert pq.read_table(root / "joined" / side[1]["file"]).equals(pacsv.read_csv(root / "users.csv"))


def test_side_tables_in_a_stream_learn_what_hand_joined_parts_learn(shop, tiny_config_shared, capsys):
    root, _, _, _, unmatched = shop
    split = {"method": "hash", "column": "request_id"}
    want, _ = train(root, "hand-stream", {"path": str(root / "hand-parts"), "split": split}, tiny_config_shared)
    got, said = train(root, "joined-stream", {"path": str(root / "log-parts"), "split": split, "join": joins(root)},
                      tiny_config_shared, capsys=capsys)  # fmt: skip
    assert got == want
    assert f"data.join items.parquet: {unmatched:,} of 3,000 log rows" in said


def test_predict_and_evaluate_fill_ids_from_the_runs_side_tables(shop, tiny_config_shared, capsys):
    root = shop[0]
    if not (root / "joined").exists():
        train(root, "joined", {"path": str(root / "log.parquet"), "join": joins(root)}, tiny_config_shared)
    run = str(root / "joined")
    for data, out in (("log.parquet", "p-log.parquet"), ("hand.parquet", "p-hand.parquet"), ("log-parts", "p-parts")):
        assert main(["predict", run, str(root / data), "--keep", "request_id", "--out", str(root / out)]) == 0
    ids, whole = pq.read_table(root / "p-log.parquet"), pq.read_table(root / "p-hand.parquet")
    parts = pq.ParquetDataset(root / "p-parts").read()
    assert ids.equals(whole)
    assert parts.column_names == whole.column_names
    for name in whole.column_names:  # piece by piece: other batches, the same values to float rounding
        np.testing.assert_allclose(parts[name].to_numpy(), whole[name].to_numpy(), rtol=1e-6)
    capsys.readouterr()
    assert main(["evaluate", run, str(root / "log.parquet"), "--json", str(root / "e1.json")]) == 0
    assert main(["evaluate", run, str(root / "hand.parquet"), "--json", str(root / "e2.json")]) == 0
    assert json.loads((root / "e1.json").read_text()) == json.loads((root / "e2.json").read_text())


@pytest.fixture(scope="module")
def joined_client(shop, tiny_config_shared):
    root = shop[0]
    if not (root / "joined").exists():
        train(root, "joined", {"path": str(root / "log.parquet"), "join": joins(root)}, tiny_config_shared)
    from fastapi.testclient import TestClient

    return TestClient(create_app(root / "joined"))


def test_serving_only_ids_equals_serving_whole_rows(shop, joined_client):
    _, table, _, hand, _ = shop
    features = Predictor.load(shop[0] / "joined").encoder.schema.columns(labels=False)
    rows = hand.select([*features, "item_id", "user_id"]).slice(0, 12).to_pylist()
    full = joined_client.post("/v1/score", json={"rows": rows})
    assert full.status_code == 200, full.text
    only_ids = [{k: v for k, v in r.items() if k not in ITEM + USER} for r in rows]
    got = joined_client.post("/v1/score", json={"rows": only_ids})
    assert got.status_code == 200, got.text
    assert got.json() == full.json()
    # a field given explicitly wins over the side table
    priced = [{**r, "price": 1234.0} for r in only_ids]
    want = joined_client.post("/v1/score", json={"rows": [{**r, "price": 1234.0} for r in rows]}).json()
    assert joined_client.post("/v1/score", json={"rows": priced}).json() == want != full.json()
    # recommend: the user's key in context, the items' in each candidate
    context = {c: rows[0][c] for c in ("user_id", "device", "hour", "recent_categories", "user_cat_clicks")}
    candidates = [{"id": i, "item_id": r["item_id"], "position": r["position"]} for i, r in enumerate(rows)]
    whole = [{**c, **{k: rows[i][k] for k in ITEM}} for i, c in enumerate(candidates)]
    user = {k: rows[0][k] for k in USER}
    a = joined_client.post("/v1/recommend", json={"context": context, "candidates": candidates, "k": 5})
    b = joined_client.post("/v1/recommend", json={"context": {**context, **user}, "candidates": whole, "k": 5})
    assert a.status_code == 200, a.text
    assert a.json() == b.json()


def test_a_row_without_its_key_or_attributes_is_a_422_naming_the_key(shop, joined_client):
    row = shop[3].select(["user_id", "device", "hour", "position", "recent_categories", "user_cat_clicks"]).slice(0, 1)
    got = joined_client.post("/v1/score", json={"rows": row.to_pylist()})
    assert got.status_code == 422
    assert got.json()["message"] == ("rows[0].category: Field required; or give 'item_id', whose row in "
                                     "items.parquet has it")  # fmt: skip
    info = joined_client.get("/v1/model").json()
    sides = [(s["name"], s["on"]) for s in info["side_tables"]]
    assert sides == [("items.parquet", "item_id"), ("users.csv", "user_id")]


def test_side_table_errors_name_file_key_and_rows(shop, tiny_config_shared, tmp_path, capsys):
    root = shop[0]
    users = pacsv.read_csv(root / "users.csv")
    pacsv.write_csv(pa.concat_tables([users, users.slice(16, 1)]), tmp_path / "users.csv")
    pacsv.write_csv(users.drop_columns(["user_id"]), tmp_path / "nokey.csv")
    items = pq.read_table(root / "items.parquet")
    price = items["price"].cast(pa.string()).to_pylist()
    price[3] = "N/A"
    pacsv.write_csv(items.set_column(items.column_names.index("price"), "price", pa.array(price)),
                    tmp_path / "items.csv")  # fmt: skip
    cases = [
        ({"path": str(tmp_path / "users.csv"), "on": "user_id"},
         f"users.csv: key 'user_id' value {users['user_id'][16].as_py()} is on more than one row "
         f"(rows 17 and {users.num_rows + 1}); "
         "a side table has one row per key"),
        ({"path": str(tmp_path / "nokey.csv"), "on": "user_id"},
         "nokey.csv (a side table keyed by 'user_id'): missing column(s) 'user_id'"),
        ({"path": str(root / "users.csv"), "on": "user_price_pref"},
         "log.parquet: no column 'user_price_pref' to join users.csv on"),
        ({"path": str(tmp_path / "gone.csv"), "on": "user_id"}, "data.join.0.path: "),
        ({"path": str(tmp_path / "items.csv"), "on": "item_id"},
         "column 'price' in items.csv row 4: expected a number, got 'N/A'"),  # the side table's row, not the log's
    ]  # fmt: skip
    for join, message in cases:
        raw = copy.deepcopy(tiny_config_shared)
        raw["data"] = {"source": "file", "path": str(root / "log.parquet"), "join": [join]}
        raw["schema"] = dataclasses.asdict(default_schema())
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
        capsys.readouterr()
        assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


# -- class labels as values ------------------------------------------------------------------------
def relabel(table: pa.Table, segment, interest) -> pa.Table:
    """user_segment and interests with each class index replaced by ``segment(k)`` / ``interest(k)``."""
    seg = pa.array([segment(k) for k in table["user_segment"].to_pylist()])
    lists = table["interests"].combine_chunks()
    names = pa.array([interest(k) for k in lists.flatten().to_pylist()])
    inter = pa.ListArray.from_arrays(lists.offsets, names)
    out = table.set_column(table.column_names.index("user_segment"), "user_segment", seg)
    return out.set_column(out.column_names.index("interests"), "interests", inter)


def value_schema(n_segments=None) -> dict:
    """The simulator's schema with the classes left to the train split (or n_classes given)."""
    schema = dataclasses.asdict(default_schema())
    for t in schema["tasks"]:
        if t["name"] in ("user_segment", "interests"):
            t["n_classes"] = n_segments if t["name"] == "user_segment" else None
    return schema


NAMES = sorted(SEGMENTS)  # the segments' names sort as their indices do


@pytest.mark.parametrize("kind", ["names", "one-based"])
def test_labels_as_values_learn_what_class_indices_learn(shop, tiny_config_shared, kind, capsys):
    root, table = shop[0], shop[1]
    index_run = root / "index"
    if not index_run.exists():
        pq.write_table(table, root / "index.parquet")
        train(root, "index", {"path": str(root / "index.parquet")}, tiny_config_shared)
    segment = (lambda k: NAMES[k]) if kind == "names" else (lambda k: k + 1)
    pq.write_table(relabel(table, segment, lambda k: f"cat{k:02d}"), root / f"{kind}.parquet")
    schema = value_schema(None if kind == "names" else 4)  # 1-based with n_classes 4: as users wrote it
    got, _ = train(root, kind, {"path": str(root / f"{kind}.parquet")}, tiny_config_shared, schema)
    assert got == json.loads((index_run / "metrics.json").read_text())
    enc = Predictor.load(root / kind).encoder
    seg_names = NAMES if kind == "names" else ["1", "2", "3", "4"]
    assert enc.class_names("user_segment") == seg_names
    assert enc.class_names("interests") == [f"cat{k:02d}" for k in range(20)]
    # predict names its columns by class, with the index run's values
    capsys.readouterr()
    for run, out in ((index_run, "pi.parquet"), (root / kind, "pv.parquet")):
        assert main(["predict", str(run), str(root / f"{kind}.parquet"), "--out", str(root / out)]) == 0
    by_index, by_value = pq.read_table(root / "pi.parquet"), pq.read_table(root / "pv.parquet")
    for k, name in enumerate(seg_names):
        assert by_value[f"user_segment={name}"].equals(by_index[f"user_segment_{k}"])
    assert by_value["interests=cat07"].equals(by_index["interests_7"])
    assert "user_segment_0" not in by_value.column_names
    # the service says which class each probability is for
    from fastapi.testclient import TestClient

    client = TestClient(create_app(root / kind))
    rows = table.select(enc.schema.columns(labels=False)).slice(0, 3).to_pylist()
    body = client.post("/v1/score", json={"rows": rows}).json()
    assert body["classes"]["user_segment"] == seg_names and len(body["predictions"]["user_segment"][0]) == 4
    index_body = TestClient(create_app(index_run)).post("/v1/score", json={"rows": rows}).json()
    assert body["predictions"] == index_body["predictions"]
    assert index_body["classes"]["user_segment"] == ["0", "1", "2", "3"]


def test_a_class_the_train_split_never_had_names_file_row_and_value(shop, tiny_config_shared, capsys):
    root = shop[0]
    if not (root / "names").exists():
        pq.write_table(relabel(shop[1], lambda k: NAMES[k], lambda k: f"cat{k:02d}"), root / "names.parquet")
        train(root, "names", {"path": str(root / "names.parquet")}, tiny_config_shared, value_schema())
    rows = pq.read_table(root / "names.parquet").slice(0, 5)
    seg = rows["user_segment"].to_pylist()
    seg[2] = "vip"
    rows = rows.set_column(rows.column_names.index("user_segment"), "user_segment", pa.array(seg))
    pq.write_table(rows, root / "new.parquet")
    capsys.readouterr()
    assert main(["evaluate", str(root / "names"), str(root / "new.parquet")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "column 'user_segment' in new.parquet row 3: expected one of the train split's classes "
        f"({', '.join(NAMES)}), got 'vip'"
    )
    assert pc.count_distinct(rows["user_segment"]).as_py() >= 2
