"""mtlrec convert: a public data set's file to Parquet parts block by block, equal to what the
in-memory adapter reads, with errors naming the file's line in any block, and nothing written on
an error; the parts stream with configs/ali_ccp_stream.yaml."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtlrec.cli.main import main
from mtlrec.data.datasets.ali_ccp import AliCCP

RAW = "".join(f"{i},{i % 2},{int(i % 4 == 1)},101:{i % 5},205:{i % 3}" + (",210:7,210:8" if i % 3 else "") + "\n"
              for i in range(1, 26))  # fmt: skip
CSV = "click,purchase,101,205,D509\n" + "".join(
    f"{i % 2},{int(i % 4 == 1)},{i % 5},{i % 3},{i / 10}\n" for i in range(23)
)


@pytest.mark.parametrize("name, text", [("raw.txt", RAW), ("x.csv", CSV), ("blank.txt", RAW.replace("\n", "\n\n", 3))])
@pytest.mark.parametrize("keep", [False, True])
def test_parts_hold_the_rows_the_adapter_reads(tmp_path, name, text, keep):
    path = tmp_path / name
    path.write_text(text)
    args = ["convert", "ali_ccp", str(path), "--out", str(tmp_path / "parts"), "--part-rows", "7"]
    assert main(args + (["--option", "unclicked_purchases=keep"] if keep else [])) == 0
    parts = sorted((tmp_path / "parts").iterdir())
    lines = [line for line in text.splitlines() if line.strip()]  # the header too: in the first block
    assert len(parts) == -(-len(lines) // 7)
    got = pa.concat_tables([pq.read_table(p) for p in parts])
    want = AliCCP(unclicked_purchases="keep" if keep else "drop")._read(path)[0]
    assert got.column_names == want.column_names
    for column in want.column_names:
        assert got[column].to_pylist() == want[column].to_pylist(), column


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("raw.txt", RAW + "26,0,0,101:1,205-2\n", r"raw.txt line 26: field 5: expected a field:feasign token"),
        ("x.csv", CSV + "0,1,2\n", r"x.csv line 25: expected 5 fields separated by ',', got 3"),
        ("x.csv", CSV + "0,7,2,3,0.1\n", r"x.csv line 25: column 'purchase': expected a 0/1 label, got '7'"),
    ],
)
def test_a_bad_line_in_a_later_block_is_named_and_nothing_is_written(tmp_path, capsys, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "parts"
    assert main(["convert", "ali_ccp", str(path), "--out", str(out), "--part-rows", "7"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists() and not list(tmp_path.glob(".parts*"))


def test_a_source_without_blocks_and_bad_options_are_clear_errors(tmp_path, capsys):
    path = tmp_path / "raw.txt"
    path.write_text(RAW)
    assert main(["convert", "taobao_userbehavior", str(path), "--out", str(tmp_path / "p")]) == 2
    assert "has no block-by-block conversion" in capsys.readouterr().err
    assert main(["convert", "ali_ccp", str(path), "--out", str(tmp_path / "p"), "--option", "nope=1"]) == 2
    assert "data.ali_ccp.nope: unknown hyperparameter" in capsys.readouterr().err


def test_converted_parts_stream_with_the_stream_config(shared, tmp_path, monkeypatch):
    from mtlrec.config import load_config
    from mtlrec.experiment import run_experiment

    folder = shared("ali-ccp/torch_rechub")
    for split in ("train", "val", "test"):
        out = tmp_path / "ali_ccp_parts" / split
        path = folder / f"ali_ccp_{split}_sample.csv"
        assert main(["convert", "ali_ccp", str(path), "--out", str(out), "--part-rows", "40"]) == 0
    cfg = load_config("configs/ali_ccp_stream.yaml", ["train.epochs=1", "train.batch_size=32"])
    monkeypatch.chdir(tmp_path)
    metrics = run_experiment(cfg, tmp_path / "run")
    assert {"click", "purchase"} <= set(metrics["test"]) and 0 <= metrics["test"]["click"]["auc"] <= 1
