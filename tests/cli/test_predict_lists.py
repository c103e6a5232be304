"""`mtlrec predict --lists`: one row per (request, list, rank), each list sorted by its score, the
fused list ranked by the run's fusion (fusion.json when present)."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mtlrec.artifacts import write_json
from mtlrec.cli.main import main
from mtlrec.data.readers import write_table
from mtlrec.serve.predictor import Predictor


def cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def setup(trained_run, shop_table, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    data = tmp_path / "candidates.parquet"
    write_table(shop_table.slice(0, 95), data)  # 10 requests, the last with 5 candidates
    return run_dir, data, shop_table.slice(0, 95)


def test_predict_lists_writes_every_list_of_every_request(capsys, setup, tmp_path):
    run_dir, data, table = setup
    write_json(run_dir / "fusion.json", {"fuser": {"name": "expected_value",
                                                   "expected_value": {"chain": ["click", "purchase"], "value": "price"}}})  # fmt: skip
    out = tmp_path / "lists.parquet"
    code, stdout, err = cli(capsys, "predict", run_dir, data, "--lists", "--top", 3, "--keep", "price", "--out", out)
    assert code == 0, err
    assert "5 lists (click, add_to_cart, purchase, order_value, fused) for 10 'request_id' groups" in stdout
    got = pq.read_table(out)
    assert got.column_names == ["request_id", "list", "rank", "item_id", "score", "price"]
    assert got.num_rows == 10 * 5 * 3

    preds = Predictor.load(run_dir).predict(table)
    price = table["price"].to_numpy()
    fused = preds["click"] * preds["purchase"] * price
    request, items = table["request_id"].to_numpy(), table["item_id"].to_numpy()
    rows = got.to_pylist()
    for r in np.unique(request):
        mine = np.flatnonzero(request == r)
        for name, score in [("click", preds["click"]), ("order_value", preds["order_value"]), ("fused", fused)]:
            listed = [row for row in rows if row["request_id"] == r and row["list"] == name]
            best = mine[np.argsort(-score[mine], kind="stable")[:3]]
            assert [row["rank"] for row in listed] == [1, 2, 3]
            assert [row["item_id"] for row in listed] == items[best].tolist()
            assert [row["score"] for row in listed] == pytest.approx(score[best].tolist(), rel=1e-6)
            assert [row["price"] for row in listed] == price[best].tolist()


def test_predict_lists_default_fusion_and_errors(capsys, setup, tmp_path):
    run_dir, data, table = setup
    out = tmp_path / "lists.csv"
    code, stdout, err = cli(capsys, "predict", run_dir, data, "--lists", "--out", out)
    assert code == 0, err
    assert "fused: click^1" in stdout  # no fusion.json, no config section: pCTR only
    rows = pacsv.read_csv(out)
    assert rows.num_rows == 5 * 95
    fused = rows.filter(np.asarray(rows["list"].to_pylist()) == "fused")["item_id"].to_pylist()
    clicks = rows.filter(np.asarray(rows["list"].to_pylist()) == "click")["item_id"].to_pylist()
    assert fused == clicks

    code, _, err = cli(capsys, "predict", run_dir, data, "--lists", "--top", 0, "--out", out)
    assert code == 2 and "--top: expected an integer >= 1, got 0" in err
    code, _, err = cli(capsys, "predict", run_dir, data, "--lists", "--id", "sku", "--out", out)
    assert code == 2 and "candidates.parquet (--id): missing column(s) 'sku'" in err
    code, _, err = cli(capsys, "predict", run_dir, data, "--lists", "--group", "session", "--out", out)
    assert code == 2 and "missing column(s) 'session'" in err
    write_json(run_dir / "fusion.json", {"fuser": {"name": "product", "product": {"weights": {"margin": 1}}}})
    code, _, err = cli(capsys, "predict", run_dir, data, "--lists", "--out", out)
    assert code == 2 and "input 'margin' is neither a task prediction nor a column of candidates.parquet" in err
