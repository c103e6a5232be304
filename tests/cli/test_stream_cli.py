"""The command line on a directory of files: simulate writes parts one at a time, train streams
them, and predict and evaluate read them piece by piece with the answers of the one-file path."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from mtlrec.cli.main import main
from mtlrec.data.readers import write_parts
from mtlrec.data.synthetic import default_schema


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory, tiny_config_shared):
    root = tmp_path_factory.mktemp("stream")
    assert main(["simulate", "--rows", "5000", "--part-rows", "2000", "--users", "500", "--items", "300",
                 "--out", str(root / "parts")]) == 0  # fmt: skip
    raw = copy.deepcopy(tiny_config_shared)
    raw["data"] = {"source": "file", "path": str(root / "parts"), "split": {"method": "hash", "column": "request_id"}}
    raw["schema"] = dataclasses.asdict(default_schema())
    (root / "config.yaml").write_text(yaml.safe_dump(raw))
    assert main(["train", str(root / "config.yaml"), "--out", str(root / "run")]) == 0
    pq.write_table(ds.dataset(root / "parts").to_table(), root / "all.parquet")
    return root


def test_simulate_writes_a_directory_of_parts(stream_run):
    files = sorted((stream_run / "parts").iterdir())
    assert [f.name for f in files] == ["part-00001.parquet", "part-00002.parquet", "part-00003.parquet"]
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [2000, 2000, 1000]
    ids = ds.dataset(stream_run / "parts").to_table()["request_id"].to_numpy()
    assert len(np.unique(ids)) == 500 and (np.diff(ids) >= 0).all()  # one shop, request ids go on across parts


def test_predict_and_evaluate_a_directory_as_one_file(stream_run, capsys):
    run, parts, whole = stream_run / "run", stream_run / "parts", stream_run / "all.parquet"
    assert main(["predict", str(run), str(parts), "--keep", "request_id", "--out", str(stream_run / "p")]) == 0
    assert main(["predict", str(run), str(whole), "--keep", "request_id", "--out", str(stream_run / "p.parquet")]) == 0
    streamed, one = ds.dataset(stream_run / "p").to_table(), pq.read_table(stream_run / "p.parquet")
    assert streamed.column_names == one.column_names and streamed.num_rows == 5000
    for name in one.column_names:
        np.testing.assert_allclose(streamed[name].to_numpy(), one[name].to_numpy(), rtol=1e-6)
    capsys.readouterr()
    assert main(["evaluate", str(run), str(parts), "--json", str(stream_run / "e1.json")]) == 0
    assert main(["evaluate", str(run), str(whole), "--json", str(stream_run / "e2.json")]) == 0
    import json

    a, b = (json.loads((stream_run / f).read_text()) for f in ("e1.json", "e2.json"))
    for key in ("data", "oracle"):
        for task, metrics in b[key].items():
            assert a[key][task] == pytest.approx(metrics, rel=1e-6, nan_ok=True), (key, task)
    assert main(["predict", str(run), str(parts), "--lists", "--out", str(stream_run / "l")]) == 2
    assert "--lists: needs one file" in capsys.readouterr().err


def test_parts_are_written_as_a_set(tmp_path):
    out = tmp_path / "out"
    assert write_parts(out, [pa.table({"a": [1, 2]}), pa.table({"a": [3]})]) == 3

    def failing():
        yield pa.table({"a": [9]})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_parts(out, failing())
    assert ds.dataset(out).to_table()["a"].to_pylist() == [1, 2, 3]  # the earlier set, whole
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing left over
