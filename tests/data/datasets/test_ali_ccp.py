"""ali_ccp: the processed CSV (with or without header) and the raw field:feasign lines, folders with
their own splits, purchases without a click, and malformed lines naming file and line."""

from __future__ import annotations

import pytest

from mtlrec.config import load_config
from mtlrec.errors import DataError

RAW = """\
1,1,1,101:11,205:21,210:31,210:32,853:41,150_14:51,150_14:52,150_14:53
2,0,0,101:12,205:22,210:33
3,0,1,101:13,205:21,301:61
"""
CSV = """\
click,purchase,101,205,D509
1,1,7,3,0.25
0,0,8,3,
1,0,7,4,0.5
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_raw_lines_become_categorical_and_list_columns(tmp_path, load, caplog):
    src = load("ali_ccp", write(tmp_path / "raw.txt", RAW))
    assert "raw.txt: 1 row(s) with purchase=1 but click=0; dropped" in caplog.text
    t = src.table
    assert t["sample_id"].to_pylist() == ["1", "2"]  # line 3 converts without a click: dropped
    assert t["click"].to_pylist() == [1, 0] and t["purchase"].to_pylist() == [1, 0]
    assert t["101"].to_pylist() == ["11", "12"]
    assert t["301"].to_pylist() == [None, None]  # a field a line lacks is missing
    assert t["210"].to_pylist() == [["31", "32"], ["33"]]
    assert t["150_14"].to_pylist() == [["51", "52", "53"], []]
    kinds = {f.name: f.kind for f in src.schema.features}
    assert kinds["101"] == "categorical" and kinds["210"] == "sequence" and "sample_id" not in kinds
    assert src.schema.group == "101"
    assert src.schema.task("purchase").where == "click"


def test_unclicked_purchases_can_be_kept(tmp_path, load, caplog):
    src = load("ali_ccp", write(tmp_path / "raw.txt", RAW), ali_ccp={"unclicked_purchases": "keep"})
    assert "1 row(s) with purchase=1 but click=0; kept" in caplog.text
    assert src.table["purchase"].to_pylist() == [1, 0, 1]


@pytest.mark.parametrize(
    "line, message",
    [
        ("4,0,0,101:14,205-22", r"raw.txt line 4: field 5: expected a field:feasign token, got '205-22'"),
        ("4,x,0,101:14", r"raw.txt line 4: field 2 \(click\): expected 0 or 1, got 'x'"),
        ("4,0,2,101:14", r"raw.txt line 4: field 3 \(conversion\): expected 0 or 1, got '2'"),
        ("4,0", r"raw.txt line 4: expected sample_id,click,conversion,field:feasign,..., got 2 field"),
        ("4,0,0,101:14,999:1", r"raw.txt line 4: unknown Ali-CCP field '999'"),
        ("4,0,0,101:14,101:15", r"raw.txt line 4: field 101 appears 2 times"),
    ],
)
def test_malformed_raw_lines(tmp_path, load, line, message):
    with pytest.raises(DataError, match=message):
        load("ali_ccp", write(tmp_path / "raw.txt", RAW.replace("3,0,1,", "3,0,0,") + line + "\n"))


def test_processed_csv(tmp_path, load):
    src = load("ali_ccp", write(tmp_path / "x.csv", CSV))
    t = src.table
    assert t["101"].to_pylist() == ["7", "8", "7"]
    assert t["D509"].to_pylist()[0] == 0.25 and t["D509"].is_null().to_pylist() == [False, False, False]
    assert {f.name: f.kind for f in src.schema.features} == {"101": "categorical", "205": "categorical", "D509": "numeric"}


@pytest.mark.parametrize(
    "text, message",
    [
        (CSV + "1,1,7\n", r"x.csv line 5: expected 5 fields separated by ',', got 3"),
        (CSV.replace("0,0,8,3,", "0,no,8,3,"), r"x.csv line 3: column 'purchase': expected a 0/1 label, got 'no'"),
        (CSV.replace("0,0,8,3,", "2,0,8,3,"), r"x.csv line 3: column 'click': expected a 0/1 label, got '2'"),
        (CSV.replace("0.25", "a quarter"), r"x.csv line 2: column 'D509': expected a number, got 'a quarter'"),
        ("1,0,5\n", r"x.csv line 1: no header row and 3 fields; expected a header or the 20 columns"),
        ("click,101\n1,5\n", r"x.csv: no label column\(s\) purchase"),
    ],
)
def test_malformed_csv(tmp_path, load, text, message):
    with pytest.raises(DataError, match=message):
        load("ali_ccp", write(tmp_path / "x.csv", text))


def test_shared_torch_rechub_folder_uses_its_own_splits(shared, load):
    src = load("ali_ccp", shared("ali-ccp/torch_rechub"))
    assert {k: v.num_rows for k, v in src.splits.items()} == {"train": 100, "valid": 50, "test": 50}
    kinds = [f.kind for f in src.schema.features]
    assert kinds.count("categorical") == 23 and kinds.count("numeric") == 8


def test_shared_paddlerec_aitm_test_file_has_no_header(shared, load, caplog):
    src = load("ali_ccp", shared("ali-ccp/paddlerec_aitm"))
    counts = sorted(r.getMessage().split(": ")[1].split(" ")[0] for r in caplog.records)
    assert counts == ["2", "3"]  # README: two train rows have purchase=1 with click=0 (and 3 test rows)
    assert src.splits["train"].num_rows == 46 and src.splits["valid"].num_rows + src.splits["test"].num_rows == 47
    assert src.splits["test"].column_names == src.splits["train"].column_names


def test_shared_raw_format(shared, load):
    src = load("ali_ccp", shared("ali-ccp/paddlerec_esmm_raw"))
    train = src.splits["train"]
    assert train.num_rows == 10
    assert [len(v) for v in train["210"].to_pylist()] == [3, 5, 11, 4, 3, 14, 6, 3, 3, 3]
    assert {len(v) for v in train["110_14"].to_pylist()} == {342}


def test_ali_ccp_config_trains_end_to_end(shared, tmp_path):
    from mtlrec.experiment import run_experiment

    shared("ali-ccp/torch_rechub")
    cfg = load_config("configs/ali_ccp.yaml", ["train.epochs=1", "train.progress=false"])
    metrics = run_experiment(cfg, tmp_path / "run")
    assert {"click", "purchase"} <= set(metrics["test"])
