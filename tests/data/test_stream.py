"""Streaming: a directory of Parquet/CSV files read piece by piece gives the splits, the encoder
and the metrics of the in-memory path on the same rows; its shuffled epochs serve every row once,
resume exactly mid-epoch, and its memory does not grow with the number of rows."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mtlrec.config import DataConfig, ExperimentConfig, SplitConfig
from mtlrec.data.encode import Encoder
from mtlrec.data.readers import write_table
from mtlrec.data.split import split_table
from mtlrec.data.stream import open_splits, streams
from mtlrec.data.synthetic import default_schema
from mtlrec.errors import ConfigError, DataError
from mtlrec.evaluation import score_split
from mtlrec.experiment import prepare, run_experiment

SPLIT = {"method": "hash", "column": "request_id", "valid": 0.1, "test": 0.2}


@pytest.fixture(scope="module")
def parts(shop_table, tmp_path_factory):
    """The session's 6000 simulated rows in three Parquet files of row groups of 700 rows."""
    root = tmp_path_factory.mktemp("parts")
    for i, start in enumerate((0, 2500, 4100)):
        end = {0: 2500, 2500: 4100, 4100: 6000}[start]
        pq.write_table(shop_table.slice(start, end - start), root / f"part-{i}.parquet", row_group_size=700)
    return root


def stream_config(tiny_config, path, **data) -> dict:
    raw = copy.deepcopy(tiny_config)
    raw["data"] = {"source": "file", "path": str(path), "split": dict(SPLIT), "shuffle_buffer": 1000, **data}
    raw["schema"] = json.loads(json.dumps(_schema_dict()))
    return raw


def _schema_dict() -> dict:
    import dataclasses

    return dataclasses.asdict(default_schema())


def test_a_directory_streams_with_the_in_memory_splits_encoder_and_metrics(parts, shop_table, tiny_config):
    cfg = ExperimentConfig.model_validate(stream_config(tiny_config, parts))
    assert streams(cfg.data) and not streams(DataConfig(source="file", path=str(parts / "part-0.parquet")))
    encoder, splits = open_splits(cfg.data, cfg.schema_, extra=[f"oracle_{t.name}" for t in cfg.schema_.tasks])
    tables, _ = split_table(shop_table, SplitConfig(**SPLIT), "shop")
    assert {s: len(d) for s, d in splits.items()} == {s: t.num_rows for s, t in tables.items()}
    whole = Encoder(cfg.schema_).fit(tables["train"])
    assert encoder.vocabs_ == whole.vocabs_ and encoder.counts_ == whole.counts_
    for name, stats in whole.numeric_.items():
        assert encoder.numeric_[name] == pytest.approx(stats, rel=1e-12)
    # one model, the test split in memory and streamed: the same metrics (and oracle)
    from mtlrec.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, whole.layout(), cfg.schema_.tasks)
    in_memory = score_split(model, whole.transform(tables["test"]), 512, tables["test"]).evaluate(model)
    streamed = score_split(model, splits["test"], 512).evaluate(model)
    for got, want in zip(streamed, in_memory):
        for task, metrics in want.items():
            assert got[task] == pytest.approx(metrics, rel=1e-5, abs=1e-6, nan_ok=True), task
    assert splits["valid"].class_counts("click") == whole.transform(tables["valid"]).class_counts("click")


def test_a_split_past_the_exact_rows_is_folded_in_bounded_memory(parts, tiny_config, caplog):
    """exact_rows=0: every chunk folded; the metrics equal the exact ones (AUC within the logged bound)."""
    cfg = ExperimentConfig.model_validate(stream_config(tiny_config, parts))
    encoder, splits = open_splits(cfg.data, cfg.schema_, extra=[f"oracle_{t.name}" for t in cfg.schema_.tasks])
    from mtlrec.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, encoder.layout(), cfg.schema_.tasks)
    exact = score_split(model, splits["test"], 512).evaluate(model)
    with caplog.at_level("WARNING", logger="mtlrec.evaluation"):
        folded = score_split(model, splits["test"], 512, exact_rows=0).evaluate(model)
    bound = float(caplog.records[-1].message.split("within ")[1].split(" ")[0])
    assert 0 <= bound < 1e-3 and f"over {len(splits['test'])} rows" in caplog.records[-1].message
    for got, want in zip(folded, exact):
        assert set(got) == set(want)
        for task, metrics in want.items():
            for name, value in metrics.items():
                tol = bound + 1e-9 if "auc" in name and name != "gauc" else 1e-9
                assert got[task][name] == pytest.approx(value, abs=tol, nan_ok=True), (task, name)


def test_a_run_whose_test_split_is_folded_says_so_in_its_report(parts, tiny_config, tmp_path):
    from mtlrec.report import write_report

    raw = stream_config(tiny_config, parts)
    raw["train"] = {**raw.get("train", {}), "epochs": 1, "exact_metric_rows": 0}
    metrics = run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "run")
    assert 0 < metrics["test"]["click"]["auc"] < 1
    diagnostics = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert diagnostics == {"test": {}, "folded": diagnostics["folded"]} and diagnostics["folded"] > 0
    html = write_report(tmp_path / "run").read_text()
    assert f"the test split ({diagnostics['folded']:,} rows) was evaluated in bounded memory" in html


def test_training_from_a_stream_matches_the_in_memory_path(parts, shop_table, tiny_config, tmp_path, metrics_close):
    streamed = run_experiment(ExperimentConfig.model_validate(stream_config(tiny_config, parts)), tmp_path / "s")
    write_table(shop_table, tmp_path / "all.parquet")
    raw = stream_config(tiny_config, tmp_path / "all.parquet")
    in_memory = run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "m")  # one file: read whole
    for task in ("click", "purchase"):  # other batch orders, the same rows: close, not equal
        assert streamed["test"][task]["auc"] == pytest.approx(in_memory["test"][task]["auc"], abs=0.03)
    metrics_close(streamed["oracle"]["test"], in_memory["oracle"]["test"], tol=1e-9)  # the same rows


def test_shuffled_epochs_serve_every_train_row_once_and_resume_mid_epoch(parts, tiny_config):
    cfg = ExperimentConfig.model_validate(stream_config(tiny_config, parts))
    _, splits = open_splits(cfg.data, cfg.schema_)
    train = splits["train"]
    in_order = _rows(list(train.batches(256)))
    seen = []
    for epoch in range(2):
        g = torch.Generator().manual_seed(7 + epoch)
        batches = list(train.batches(256, shuffle=True, generator=g))
        assert all(len(b) == 256 for b in batches[:-1]) and len(batches) == -(-len(train) // 256)
        rows = _rows(batches)
        assert np.array_equal(_sorted(rows), _sorted(in_order))  # every row once
        seen.append(rows)
    assert not np.array_equal(seen[0], seen[1])  # another order each epoch
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    full = list(train.batches(256, shuffle=True, generator=g1))
    for prefetch in (True, False):  # read ahead in a thread, or in turn: the same batches
        train.prefetch = prefetch
        again = list(train.batches(256, shuffle=True, generator=torch.Generator().manual_seed(3)))
        assert all(torch.equal(a.cat, b.cat) and torch.equal(a.dense, b.dense) for a, b in zip(again, full))
    for start in (1, 4, 5, len(full) - 1):  # 1000-row windows hold 3.9 batches: inside and across them
        g2.manual_seed(3)
        tail = list(train.batches(256, shuffle=True, generator=g2, start=start))
        assert len(tail) == len(full) - start
        assert all(torch.equal(a.cat, b.cat) and torch.equal(a.dense, b.dense) for a, b in zip(tail, full[start:]))
        assert torch.equal(g1.get_state(), g2.get_state())  # the generator ends where the full epoch leaves it


def _rows(batches) -> np.ndarray:
    parts = [torch.cat([b.cat.double(), b.seq.flatten(1).double(), b.dense.double()], 1) for b in batches]
    return torch.cat(parts).numpy()


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def test_csv_files_stream_and_name_the_file_and_row_of_a_bad_value(shop_table, tmp_path, tiny_config):
    root = tmp_path / "csv"
    write_table(shop_table.slice(0, 3000), root / "a.csv")
    bad = shop_table.slice(3000, 3000).to_pydict()
    bad["price"] = [str(v) for v in bad["price"]]
    bad["price"][41] = "N/A"
    write_table(pa.table(bad).cast(shop_table.slice(0, 0).schema.set(
        shop_table.schema.get_field_index("price"), pa.field("price", pa.string()))), root / "b.csv")  # fmt: skip
    cfg = ExperimentConfig.model_validate(stream_config(tiny_config, root))
    with pytest.raises(DataError, match=r"column 'price' in b.csv row 42: expected a number, got 'N/A'"):
        prepare(cfg)


def test_a_stream_splits_by_time_thresholds_as_the_in_memory_path_does(parts, shop_table, tiny_config):
    ts = np.asarray(shop_table["ts"])
    valid_from, test_from = (int(v) for v in np.quantile(ts, [0.7, 0.85]))
    split = {"method": "time", "column": "ts", "valid_from": valid_from, "test_from": test_from}
    raw = stream_config(tiny_config, parts)
    raw["data"]["split"] = split
    cfg = ExperimentConfig.model_validate(raw)
    encoder, splits = open_splits(cfg.data, cfg.schema_)
    tables, _ = split_table(shop_table, SplitConfig(**split), "shop")
    assert {s: len(d) for s, d in splits.items()} == {s: t.num_rows for s, t in tables.items()}
    assert encoder.vocabs_ == Encoder(cfg.schema_).fit(tables["train"]).vocabs_
    test_ts = np.concatenate([raw_rows["ts"].to_numpy() for _, raw_rows in splits["test"].chunks()])
    assert np.array_equal(np.sort(test_ts), np.sort(tables["test"]["ts"].to_numpy()))
    raw["data"]["split"] = {**split, "test_from": int(ts.max()) + 1}
    with pytest.raises(DataError, match="the test split has no rows.*check data.split.valid_from and data.split.te"):
        prepare(ExperimentConfig.model_validate(raw))


def test_splits_by_file_and_the_errors_of_a_stream(parts, tiny_config):
    raw = stream_config(tiny_config, parts, valid_path=str(parts / "part-1.parquet"),
                        test_path=str(parts / "part-2.parquet"))  # fmt: skip
    cfg = ExperimentConfig.model_validate(raw)
    _, splits = open_splits(cfg.data, cfg.schema_)
    assert {s: len(d) for s, d in splits.items()} == {"train": 2500, "valid": 1600, "test": 1900}
    # test by file, valid by the hash of request_id from the other files' rows (its test share: train)
    raw = stream_config(tiny_config, parts, test_path=str(parts / "part-2.parquet"))
    _, splits = open_splits(ExperimentConfig.model_validate(raw).data, cfg.schema_)
    rest = pa.concat_tables([pq.read_table(parts / f"part-{i}.parquet") for i in (0, 1)])
    from mtlrec.data.hashing import split_codes, stable_hash

    codes = split_codes(stable_hash(rest["request_id"]), SPLIT["valid"], SPLIT["test"], 0)
    want = {"train": int((codes != 1).sum()), "valid": int((codes == 1).sum()), "test": 1900}
    assert {s: len(d) for s, d in splits.items()} == want
    raw = stream_config(tiny_config, parts)
    raw["data"]["split"] = {"method": "time", "column": "ts"}
    with pytest.raises(ConfigError, match="split a stream by time with thresholds"):
        prepare(ExperimentConfig.model_validate(raw))
    raw["data"]["split"] = {"method": "hash", "column": "request_id", "valid": 0.0001, "test": 0.0}
    with pytest.raises(DataError, match="the valid split has no rows"):
        prepare(ExperimentConfig.model_validate(raw))
    raw["data"]["path"] = str(parts / "*.csv")
    with pytest.raises(DataError, match=r"\*.csv: no CSV or Parquet files there"):
        prepare(ExperimentConfig.model_validate(raw))


MEMORY = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from mtlrec.config import ExperimentConfig
from mtlrec.data.stream import open_splits
cfg = ExperimentConfig.model_validate(json.loads(sys.argv[1]))
encoder, splits = open_splits(cfg.data, cfg.schema_)
g = torch.Generator().manual_seed(0)
rows = sum(len(b) for b in splits["train"].batches(1024, shuffle=True, generator=g))
print(json.dumps({"rows": rows, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_memory_does_not_grow_with_the_rows(parts, tiny_config, tmp_path):
    """The same files listed once and ten times (6,000 and 60,000 rows): the fit pass and an epoch
    of shuffled batches peak at the same memory, within a few MB."""
    peaks = {}
    for copies in (4, 40):
        root = tmp_path / f"x{copies}"
        root.mkdir()
        for k in range(copies // 4):
            for f in parts.iterdir():
                (root / f"{k}-{f.name}").symlink_to(f)
        raw = stream_config(tiny_config, root)
        raw["data"]["split"] = {"method": "random", "valid": 0.1, "test": 0.1}
        out = subprocess.run([sys.executable, "-c", MEMORY, json.dumps(raw)], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        peaks[copies] = json.loads(out.stdout)
    assert peaks[40]["rows"] > 9 * peaks[4]["rows"]
    assert peaks[40]["rss_mb"] - peaks[4]["rss_mb"] < 25, peaks


def test_a_run_killed_mid_stream_resumes_exactly(parts, tiny_config, tmp_path, kill_child, metrics_close):
    """Killed in the middle of the second epoch's first window: the resumed run reads the pieces
    from that window on and ends as the uninterrupted one."""
    from mtlrec.artifacts import load_tensors, read_json

    raw = stream_config(tiny_config, parts)
    raw["train"].update(checkpoint_every=2, epochs=2)
    run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "whole")
    kill_child(raw, tmp_path / "run", "step", 12)  # in the second epoch (about 4,200 train rows: 9 steps each)
    run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "run", resume=True)
    got, want = (read_json(tmp_path / name / "metrics.json")["test"] for name in ("run", "whole"))
    metrics_close(got, want)
    a, b = load_tensors(tmp_path / "run" / "model.safetensors"), load_tensors(tmp_path / "whole" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
