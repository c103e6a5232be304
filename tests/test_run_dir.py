"""A trained run directory: its files, reloading it with Predictor, reproducing its metrics, and
determinism."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import mtlrec
from mtlrec.artifacts import LOCK, load_tensors, read_history, read_json
from mtlrec.config import ExperimentConfig
from mtlrec.data.encode import Encoder
from mtlrec.errors import ConfigError, DataError, RunError
from mtlrec.experiment import load_splits, run_experiment
from mtlrec.serve.predictor import Predictor, prediction_columns


def test_the_run_directory_has_its_files(trained_run):
    for name in ("run.json", "config.yaml", "encoder.json", "model.safetensors", "metrics.json", "history.jsonl"):
        assert (trained_run / name).is_file(), name
    assert not [p.name for p in trained_run.iterdir() if p.name.endswith(".tmp") or p.name == LOCK]
    info = read_json(trained_run / "run.json")
    assert info["format"] == 1 and info["mtlrec"] == mtlrec.__version__ and info["model"] == "shared_bottom"


def test_config_yaml_is_resolved_and_rebuilds_the_schema(trained_run):
    cfg = ExperimentConfig.model_validate(yaml.safe_load((trained_run / "config.yaml").read_text()))
    encoder = Encoder.load(trained_run / "encoder.json")
    assert cfg.schema_ == encoder.schema  # the default schema of the source was written out
    assert cfg.model.section("shared_bottom") == {"bottom_dims": [32]}
    assert cfg.train.epochs == 2


def test_history_has_one_line_per_epoch(trained_run):
    cfg = Predictor.load(trained_run).config
    history = read_history(trained_run)
    lines = (trained_run / "history.jsonl").read_text().splitlines()
    assert len(lines) == len(history) == cfg.train.epochs  # patience 2 > epochs - 1: no early stop
    tasks = cfg.schema_.tasks
    for epoch, record in enumerate(history, start=1):
        assert record["epoch"] == epoch
        assert set(record["train_loss"]) == {t.name for t in tasks}
        assert all(np.isfinite(v) and v >= 0 for v in record["train_loss"].values())
        assert set(record["valid"]) == {t.name for t in tasks}
        for t in tasks:
            assert set(record["valid"][t.name]) == set(t.metric_names)


def test_metrics_json_layout(trained_run):
    metrics = read_json(trained_run / "metrics.json")
    tasks = Predictor.load(trained_run).tasks
    assert 1 <= metrics["best_epoch"] <= 2
    assert metrics["monitor"] == "mean.auc"
    for split in ("valid", "test"):
        assert set(metrics[split]) == {t.name for t in tasks}
        assert set(metrics["oracle"][split]) == {t.name for t in tasks}  # synthetic data has ground truth
        for t in tasks:
            assert set(metrics[split][t.name]) == set(t.metric_names)
    history = read_history(trained_run)
    assert metrics["valid"] == history[metrics["best_epoch"] - 1]["valid"]  # the best weights were kept


def test_predictor_reproduces_the_test_metrics(trained_run, metrics_close):
    predictor = Predictor.load(trained_run)
    _, tables = load_splits(predictor.config)
    result = predictor.evaluate(tables["test"], where="the test split")
    metrics = read_json(trained_run / "metrics.json")
    metrics_close(result["data"], metrics["test"], tol=1e-6)
    metrics_close(result["oracle"], metrics["oracle"]["test"], tol=1e-6)


def test_predictions_have_one_column_per_task_or_class(trained_run, shop_table):
    predictor = Predictor.load(trained_run)
    preds = predictor.predict(shop_table.slice(0, 100).drop_columns(["click", "purchase"]))
    n = 100
    for t in predictor.tasks:
        p = preds[t.name]
        assert p.shape == ((n,) if t.out_dim == 1 else (n, t.out_dim)), t.name
        assert np.isfinite(p).all()
        if t.kind != "regression":
            assert ((p >= 0) & (p <= 1)).all()
    assert np.allclose(preds["user_segment"].sum(1), 1.0, atol=1e-5)
    assert (preds["order_value"] > -1).all()  # expm1 of a log1p target
    columns = prediction_columns(predictor.tasks, preds)
    assert "user_segment_0" in columns and "user_segment" not in columns and "click" in columns
    assert len(columns) == sum(t.out_dim for t in predictor.tasks)


def test_a_fresh_run_with_the_same_seed_is_identical(trained_run, tiny_config, tmp_path):
    metrics = run_experiment(ExperimentConfig.model_validate(tiny_config), tmp_path / "again")
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == read_json(trained_run / "metrics.json")
    assert metrics["best_epoch"] == read_json(trained_run / "metrics.json")["best_epoch"]
    first = load_tensors(trained_run / "model.safetensors")
    second = load_tensors(tmp_path / "again" / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)

    def untimed(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in rows]

    assert untimed(read_history(tmp_path / "again")) == untimed(read_history(trained_run))


def test_a_non_empty_run_directory_is_not_overwritten_by_accident(trained_run, tiny_config, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(RunError, match="already exists and is not empty.*--overwrite"):
        run_experiment(ExperimentConfig.model_validate(tiny_config), out)
    assert (out / "metrics.json").read_bytes() == before


def test_a_run_directory_another_live_process_writes_is_refused(trained_run, tiny_config, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    before = (out / "metrics.json").read_bytes()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as writer:
        (out / LOCK).write_text(str(writer.pid))
        try:
            with pytest.raises(RunError, match=rf"another run \(process {writer.pid}\) is writing this directory"):
                run_experiment(ExperimentConfig.model_validate(tiny_config), out, overwrite=True)
        finally:
            writer.kill()
    assert (out / "metrics.json").read_bytes() == before and (out / LOCK).is_file()


def test_a_lock_left_by_a_dead_process_is_taken_over(trained_run, tiny_config, tmp_path, metrics_close):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    (out / LOCK).write_text(str(gone.pid))
    metrics = run_experiment(ExperimentConfig.model_validate(tiny_config), out, overwrite=True)
    metrics_close(read_json(out / "metrics.json")["test"], metrics["test"])
    assert not (out / LOCK).exists()


def test_weights_that_do_not_match_the_config_are_a_run_error(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    edited = copy.deepcopy(cfg)
    edited["model"]["shared_bottom"]["bottom_dims"] = [64]
    (out / "config.yaml").write_text(yaml.safe_dump(edited))
    with pytest.raises(RunError, match=r"model.safetensors: does not match the model in config.yaml"):
        Predictor.load(out)


def test_every_history_record_has_the_monitored_value(trained_run):
    """Early stopping adds its monitor to the record before History writes it, whatever their order
    in the list of callbacks (History comes first in the run's list)."""
    for record in read_history(trained_run):
        aucs = [m["auc"] for m in record["valid"].values() if "auc" in m]
        assert record["monitor"] == {"mean.auc": pytest.approx(sum(aucs) / len(aucs))}


@pytest.mark.parametrize(
    ("change", "error"),
    [({"schema": {"tasks": [{"name": "x", "kind": "binary", "where": "no_such_column"}]}}, "no_such_column"),
     ({"model": {"shared_bottom": {"bottom_dims": "wide"}}}, "model.shared_bottom.bottom_dims")],  # fmt: skip
    ids=["data", "model"],
)
def test_a_run_that_cannot_start_leaves_the_earlier_one_whole(trained_run, tiny_config, tmp_path, change, error):
    """--overwrite removes the earlier run only once the new one's data and model are known good."""
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    raw = copy.deepcopy(tiny_config)
    for key, value in change.items():
        raw[key] = {**raw.get(key, {}), **value}
    if "schema" in change:
        import dataclasses

        from mtlrec.data.synthetic import default_schema

        raw["schema"] = {**dataclasses.asdict(default_schema()), "tasks": change["schema"]["tasks"]}
    with pytest.raises((ConfigError, DataError), match=error):
        run_experiment(ExperimentConfig.model_validate(raw), out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
