"""The command line, in-process: bad input exits with code 2 and one `error: ...` line that names
what is wrong (never a traceback); and the happy paths of predict, evaluate, simulate and train."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

import mtlrec
from mtlrec.cli.main import main
from mtlrec.config import SplitConfig
from mtlrec.data.readers import read_table, write_table
from mtlrec.data.split import split_indices
from mtlrec.data.synthetic import simulate
from mtlrec.experiment import load_splits
from mtlrec.serve.predictor import Predictor, prediction_columns

SMALL = {"users": 500, "items": 300}  # the trained run's world (conftest.SIMULATION)


def cli(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(result: tuple[int, str, str], *needles: str) -> str:
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def as_csv_table(table: pa.Table) -> pa.Table:
    """List columns as '|'-joined text, as `mtlrec simulate --out x.csv` writes them."""
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            text = pc.binary_join(pc.cast(table[field.name], pa.list_(pa.string())), "|")
            table = table.set_column(i, field.name, text)
    return table


@pytest.fixture(scope="module")
def rows() -> pa.Table:
    """New impressions from the trained run's world (other seed: other requests)."""
    return simulate(rows=300, seed=2, **SMALL)


@pytest.fixture
def csv_with(rows, tmp_path):
    """Write ``rows`` to a CSV after replacing some cells: csv_with(price={2: 'N/A'})."""

    def make(name: str = "data.csv", drop: tuple[str, ...] = (), **edits: dict[int, object]):
        table = as_csv_table(rows).drop_columns(list(drop))
        for column, cells in edits.items():
            values = [str(v) for v in table[column].to_pylist()]
            for row, value in cells.items():
                values[row - 1] = str(value)  # rows counted from 1, as in the error messages
            table = table.set_column(table.column_names.index(column), column, pa.array(values))
        write_table(table, tmp_path / name)
        return tmp_path / name

    return make


@pytest.fixture
def config_file(tiny_config, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the trained run that a test may damage."""
    return shutil.copytree(trained_run, tmp_path / "run")


# -- configs -------------------------------------------------------------------------------------
def test_missing_config_file(capsys, tmp_path):
    assert_user_error(cli(capsys, "train", tmp_path / "nope.yaml"), "nope.yaml", "cannot read config")


def test_invalid_yaml(capsys, tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  epochs: [1, 2\n")
    assert_user_error(cli(capsys, "train", tmp_path / "bad.yaml"), "bad.yaml", "not valid YAML")


def test_config_that_is_not_a_mapping(capsys, tmp_path):
    (tmp_path / "list.yaml").write_text("- train\n- epochs\n")
    assert_user_error(cli(capsys, "train", tmp_path / "list.yaml"), "list.yaml", "expected a mapping")


def test_unknown_config_key(capsys, config_file):
    assert_user_error(cli(capsys, "train", config_file, "--set", "train.epochz=3"), "train.epochz", "unknown key")


def test_wrong_type_in_config(capsys, config_file):
    assert_user_error(cli(capsys, "train", config_file, "--set", "train.lr=abc"), "train.lr", "valid number")


def test_set_without_equals_sign(capsys, config_file):
    assert_user_error(cli(capsys, "train", config_file, "--set", "train.lr"), "--set 'train.lr'", "KEY=VALUE")


def test_unknown_model_name(capsys, config_file, tmp_path):
    err = assert_user_error(
        cli(capsys, "train", config_file, "--set", "model.name=nosuch", "--out", tmp_path / "out"), "'nosuch'"
    )
    assert "shared_bottom" in err  # says what would have been valid


def test_unknown_model_hyperparameter(capsys, config_file, tmp_path):
    assert_user_error(
        cli(capsys, "train", config_file, "--set", "model.shared_bottom.bottom_dimz=[4]", "--out", tmp_path / "o"),
        "model.shared_bottom.bottom_dimz",
    )


# -- data files ----------------------------------------------------------------------------------
def test_data_file_with_a_missing_column(capsys, trained_run, csv_with):
    path = csv_with("nocol.csv", drop=("price",))
    assert_user_error(cli(capsys, "evaluate", trained_run, path), "nocol.csv", "missing column", "'price'")
    assert_user_error(cli(capsys, "predict", trained_run, path, "--out", path.with_suffix(".out.csv")), "'price'")


def test_numeric_column_with_text(capsys, trained_run, csv_with):
    path = csv_with("na.csv", price={3: "N/A"})
    assert_user_error(cli(capsys, "evaluate", trained_run, path), "column 'price' in na.csv row 3", "'N/A'")
    out = path.with_name("preds.csv")
    assert_user_error(cli(capsys, "predict", trained_run, path, "--out", out), "column 'price' in na.csv row 3")
    assert not out.exists()


def test_numeric_text_in_parquet(capsys, trained_run, rows, tmp_path):
    values = rows["user_activity"].to_pylist()
    values[4] = "many"
    table = rows.set_column(rows.column_names.index("user_activity"), "user_activity", pa.array(map(str, values)))
    write_table(table, tmp_path / "text.parquet")
    assert_user_error(cli(capsys, "evaluate", trained_run, tmp_path / "text.parquet"),
                      "column 'user_activity' in text.parquet row 5", "'many'")  # fmt: skip


def test_binary_label_out_of_domain(capsys, trained_run, rows, csv_with):
    row = int(np.flatnonzero(np.asarray(rows["click"]) == 0)[3]) + 1
    path = csv_with("labels.csv", click={row: 2})
    message = f"column 'click' in labels.csv row {row}: expected a 0/1 label, got 2\n"  # not np.float64(2.0)
    assert_user_error(cli(capsys, "evaluate", trained_run, path), message)


def test_multiclass_label_out_of_range(capsys, trained_run, csv_with):
    path = csv_with("seg.csv", user_segment={7: 9})
    message = "column 'user_segment' in seg.csv row 7: expected a class index in 0..3, got 9\n"
    assert_user_error(cli(capsys, "evaluate", trained_run, path), message)


@pytest.mark.parametrize("content, message", [("", "the file is empty"), ("click,price\n", "header but no rows")])
def test_empty_data_file(capsys, trained_run, tmp_path, content, message):
    (tmp_path / "empty.csv").write_text(content)
    assert_user_error(cli(capsys, "evaluate", trained_run, tmp_path / "empty.csv"), "empty.csv", message)


def test_missing_data_file(capsys, trained_run, tmp_path):
    assert_user_error(cli(capsys, "evaluate", trained_run, tmp_path / "gone.parquet"), "gone.parquet", "no such file")


def test_predict_output_with_an_unknown_suffix(capsys, trained_run, rows, tmp_path):
    write_table(rows, tmp_path / "data.parquet")
    out = tmp_path / "preds.xlsx"
    assert_user_error(cli(capsys, "predict", trained_run, tmp_path / "data.parquet", "--out", out), "preds.xlsx")
    assert not out.exists()


def test_predict_keep_of_an_unknown_column(capsys, trained_run, rows, tmp_path):
    write_table(rows, tmp_path / "data.parquet")
    args = ("predict", trained_run, tmp_path / "data.parquet", "--out", tmp_path / "p.csv", "--keep", "order_id")
    assert_user_error(cli(capsys, *args), "'order_id'", "--keep")
    assert not (tmp_path / "p.csv").exists()


# -- run directories -----------------------------------------------------------------------------
def test_run_directory_that_does_not_exist(capsys, tmp_path):
    assert_user_error(cli(capsys, "evaluate", tmp_path / "no-run"), "no-run", "not a run directory")


def test_run_directory_without_weights(capsys, run_copy):
    (run_copy / "model.safetensors").unlink()
    assert_user_error(cli(capsys, "evaluate", run_copy), str(run_copy), "model.safetensors")


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", '{"format": 1}'])
def test_corrupt_encoder(capsys, run_copy, content):
    (run_copy / "encoder.json").write_text(content)
    assert_user_error(cli(capsys, "evaluate", run_copy), str(run_copy / "encoder.json"))


@pytest.mark.parametrize("content", [b"\x00\xff garbage bytes \x13\x37" * 40, b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_corrupt_weights(capsys, run_copy, content):
    (run_copy / "model.safetensors").write_bytes(content)
    assert_user_error(cli(capsys, "evaluate", run_copy), str(run_copy / "model.safetensors"))


def test_truncated_weights(capsys, run_copy):
    data = (run_copy / "model.safetensors").read_bytes()
    (run_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_user_error(cli(capsys, "evaluate", run_copy), str(run_copy / "model.safetensors"))


def test_corrupt_run_config(capsys, run_copy):
    (run_copy / "config.yaml").write_text("model: [unclosed\n")
    assert_user_error(cli(capsys, "evaluate", run_copy), "config.yaml")


def test_unknown_split(capsys, trained_run):
    assert_user_error(cli(capsys, "evaluate", trained_run, "--split", "holdout"), "--split", "holdout")


def test_usage_errors_exit_2_without_a_traceback(capsys, trained_run):
    code, _, err = cli(capsys, "predict", trained_run)  # DATA and --out missing
    assert code == 2 and "Traceback" not in err and "Missing argument" in err
    code, _, err = cli(capsys, "frobnicate")
    assert code == 2 and "Traceback" not in err and "frobnicate" in err


# -- happy paths ---------------------------------------------------------------------------------
def test_version(capsys):
    assert cli(capsys, "--version") == (0, f"mtlrec {mtlrec.__version__}\n", "")


def test_models_lists_the_registry(capsys):
    code, out, _ = cli(capsys, "models")
    assert code == 0 and "shared_bottom" in out and "bottom_dims" in out


def test_predict_writes_one_column_per_task_or_class(capsys, trained_run, rows, tmp_path):
    write_table(rows, tmp_path / "data.parquet")
    out = tmp_path / "preds.csv"
    code, stdout, err = cli(capsys, "predict", trained_run, tmp_path / "data.parquet", "--out", out,
                            "--keep", "request_id,item_id")  # fmt: skip
    assert code == 0, err
    assert f"wrote {rows.num_rows} rows" in stdout
    preds = read_table(out)
    predictor = Predictor.load(trained_run)
    expected = []
    for t in predictor.tasks:
        expected += [t.name] if t.kind in ("binary", "regression") else [f"{t.name}_{k}" for k in range(t.n_classes)]
    assert preds.column_names == ["request_id", "item_id", *expected]
    assert preds.num_rows == rows.num_rows
    assert preds["item_id"].to_pylist() == rows["item_id"].to_pylist()
    want = prediction_columns(predictor.tasks, predictor.predict(rows))
    for name, values in want.items():
        np.testing.assert_allclose(np.asarray(preds[name]), values, rtol=1e-6, atol=1e-7, err_msg=name)
    segment = np.stack([np.asarray(preds[f"user_segment_{k}"]) for k in range(4)], 1)
    np.testing.assert_allclose(segment.sum(1), 1.0, atol=1e-5)


def test_predict_keeps_a_list_column_in_csv(capsys, trained_run, rows, tmp_path):
    write_table(rows, tmp_path / "data.parquet")
    out = tmp_path / "p.csv"
    code, _, err = cli(capsys, "predict", trained_run, tmp_path / "data.parquet", "--out", out,
                       "--keep", "recent_categories")  # fmt: skip
    assert code == 0, err
    first = rows["recent_categories"][0].as_py()
    assert read_table(out)["recent_categories"][0].as_py() == "|".join(map(str, first))


def test_predict_a_single_row_csv(capsys, trained_run, rows, tmp_path):
    """One row: no '|' in the sequence column, so the CSV reader sees numbers (or nothing)."""
    one = as_csv_table(rows.slice(0, 1))
    for value in ("4", ""):
        table = one.set_column(one.column_names.index("recent_categories"), "recent_categories", pa.array([value]))
        write_table(table, tmp_path / "one.csv")
        code, _, err = cli(capsys, "predict", trained_run, tmp_path / "one.csv", "--out", tmp_path / "p.csv")
        assert code == 0, err
        assert read_table(tmp_path / "p.csv").num_rows == 1


def test_predict_to_parquet(capsys, trained_run, rows, tmp_path):
    write_table(rows, tmp_path / "data.parquet")
    code, _, err = cli(capsys, "predict", trained_run, tmp_path / "data.parquet", "--out", tmp_path / "p.parquet")
    assert code == 0, err
    assert read_table(tmp_path / "p.parquet").num_rows == rows.num_rows


def test_evaluate_prints_the_table_of_the_test_split(capsys, trained_run, tmp_path, metrics_close):
    code, out, err = cli(capsys, "evaluate", trained_run, "--json", tmp_path / "m.json")
    assert code == 0, err
    lines = out.splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == ["task", "metric", "value", "oracle"]
    predictor = Predictor.load(trained_run)
    for t in predictor.tasks:
        for metric in t.metric_names:
            assert any(line.startswith(f"| {t.name} ") and f" {metric} " in line for line in lines), (t.name, metric)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    written = json.loads((tmp_path / "m.json").read_text())
    metrics_close(written["data"], metrics["test"])
    metrics_close(written["oracle"], metrics["oracle"]["test"])


def test_simulated_csv_is_read_back_with_its_list_columns(capsys, trained_run, tmp_path):
    data = tmp_path / "x.csv"
    code, out, err = cli(capsys, "simulate", "--rows", 2000, "--users", 500, "--items", 300, "--seed", 3, "--out", data)
    assert code == 0, err
    assert "wrote 2,000 impressions" in out
    table = read_table(data)
    assert pa.types.is_string(table["recent_categories"].type)  # '|'-joined text
    code, _, err = cli(capsys, "predict", trained_run, data, "--out", tmp_path / "p.parquet")
    assert code == 0, err
    predictor = Predictor.load(trained_run)
    same_rows = simulate(rows=2000, seed=3, **SMALL)  # the same rows with real list columns
    want = prediction_columns(predictor.tasks, predictor.predict(same_rows))
    got = read_table(tmp_path / "p.parquet")
    for name, values in want.items():
        np.testing.assert_allclose(np.asarray(got[name]), values, rtol=1e-5, atol=1e-6, err_msg=name)


def test_evaluate_on_a_simulated_csv(capsys, trained_run, tmp_path, metrics_close):
    data = tmp_path / "x.csv"
    assert cli(capsys, "simulate", "--rows", 2000, "--users", 500, "--items", 300, "--seed", 3, "--out", data)[0] == 0
    code, out, err = cli(capsys, "evaluate", trained_run, data, "--json", tmp_path / "m.json")
    assert code == 0, err
    assert "| click " in out and "oracle" in out.splitlines()[0]
    want = Predictor.load(trained_run).evaluate(simulate(rows=2000, seed=3, **SMALL))
    got = json.loads((tmp_path / "m.json").read_text())
    metrics_close(got["data"], want["data"], tol=1e-5)
    metrics_close(got["oracle"], want["oracle"], tol=1e-5)


def test_train_writes_a_run_directory(capsys, config_file, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "train", config_file, "--out", out, "--set", "train.epochs=1")
    assert code == 0, err
    assert "| click " in stdout and f"run directory: {out}" in stdout
    predictor = Predictor.load(out)
    assert predictor.config.train.epochs == 1
    _, tables = load_splits(predictor.config)
    assert set(predictor.evaluate(tables["test"])["data"]) == set(predictor.config.schema_.task_names)


# -- errors that name the row of the file, not of a split ---------------------------------------
SCHEMA = {
    "features": [{"name": "user_id", "kind": "categorical"}, {"name": "price", "kind": "numeric"}],
    "tasks": [{"name": "click", "kind": "binary"}, {"name": "purchase", "kind": "binary", "where": "click"}],
}


@pytest.fixture
def file_config(tiny_config, tmp_path):
    """file_config(data_path, **train) -> a config file that trains on ``data_path`` with SCHEMA."""

    def make(path, **train):
        cfg = {**tiny_config, "data": {"source": "file", "path": str(path)}, "schema": SCHEMA}
        cfg["train"] = {**cfg["train"], "epochs": 1, **train}
        (tmp_path / "file.yaml").write_text(yaml.safe_dump(cfg))
        return tmp_path / "file.yaml"

    return make


def split_rows(table: pa.Table, split: str, **cfg) -> np.ndarray:
    """The rows of ``split`` (1-based, as the errors count them) under the default data.split."""
    return split_indices(table, SplitConfig(**cfg))[split] + 1


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_a_bad_value_names_its_row_in_the_file_not_in_the_split(capsys, rows, csv_with, file_config, split, tmp_path):
    row = int(split_rows(rows, split)[3])
    path = csv_with("data.csv", price={row: "N/A"})
    result = cli(capsys, "train", file_config(path), "--out", tmp_path / "run")
    err = assert_user_error(result, f"column 'price' in data.csv row {row}: expected a number, got 'N/A'")
    assert "split" not in err


def test_a_bad_label_names_its_file_row_and_the_value_as_written(capsys, rows, csv_with, file_config, tmp_path):
    row = int(split_rows(rows, "valid")[0])
    path = csv_with("labels.csv", click={row: 2})
    assert_user_error(cli(capsys, "train", file_config(path), "--out", tmp_path / "run"),
                      f"column 'click' in labels.csv row {row}: expected a 0/1 label, got 2\n")  # fmt: skip


def test_evaluate_on_its_own_split_names_the_file_row(capsys, rows, csv_with, file_config, tmp_path):
    """The run's data file changed after training: `evaluate RUN --split test` names its row."""
    path = csv_with("data.csv")
    assert cli(capsys, "train", file_config(path), "--out", tmp_path / "run")[0] == 0
    row = int(split_rows(rows, "test")[-1])
    csv_with("data.csv", price={row: "?"})
    assert_user_error(cli(capsys, "evaluate", tmp_path / "run", "--split", "test"),
                      f"column 'price' in data.csv row {row}: expected a number, got '?'")  # fmt: skip


# -- data too small for its splits ----------------------------------------------------------------
def test_a_file_too_small_for_a_split(capsys, rows, file_config, tmp_path):
    write_table(as_csv_table(rows.slice(0, 7)), tmp_path / "tiny.csv")
    config = file_config(tmp_path / "tiny.csv")
    assert_user_error(cli(capsys, "train", config, "--out", tmp_path / "run", "--set", "data.split.valid=0.05"),
                      "tiny.csv has 7 rows: too few for a valid split (data.split.valid 0.05 of them rounds to 0); "
                      "add rows or set data.split.valid: 0")  # fmt: skip
    assert not (tmp_path / "run" / "run.json").exists()


def test_valid_and_test_shares_of_zero_train_on_every_row(capsys, rows, csv_with, file_config, tmp_path):
    """No valid split: nothing for early stopping to choose on, so every epoch runs and the last is kept."""
    config = file_config(csv_with("data.csv"), epochs=2, patience=1)
    code, out, err = cli(capsys, "train", config, "--out", tmp_path / "run",
                         "--set", "data.split.valid=0", "--set", "data.split.test=0")  # fmt: skip
    assert code == 0, err
    assert "warning: the valid split has no rows (data.split.valid: 0)" in err
    assert "warning: the test split has no rows (data.split.test: 0)" in err
    assert "Traceback" not in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2
    assert metrics["test"]["click"]["auc"] is None  # nan: no rows


# -- a split in which a binary task has one class -------------------------------------------------
@pytest.fixture
def no_purchase_outside_train(rows, csv_with):
    """The file with purchase = 0 on every valid and test row: one class there."""
    held_out = np.concatenate([split_rows(rows, "valid"), split_rows(rows, "test")])
    return csv_with("data.csv", purchase={int(r): 0 for r in held_out})


def test_one_class_in_a_split_is_a_warning_and_early_stopping_uses_the_other_tasks(
    capsys, rows, no_purchase_outside_train, file_config, tmp_path
):
    config = file_config(no_purchase_outside_train, epochs=2)
    code, _, err = cli(capsys, "train", config, "--out", tmp_path / "run")
    assert code == 0, err
    clicked = int(np.asarray(rows["click"])[split_rows(rows, "valid") - 1].sum())
    assert (f"warning: task 'purchase': the valid split has only one class (all 0) on its {clicked} rows where "
            "click = 1; its auc, gauc, calibration are undefined, so early stopping (mean.auc) uses the other "
            "tasks (click)\n") in err  # fmt: skip
    assert "warning: task 'purchase': the test split has only one class (all 0)" in err
    assert err.count("warning: task 'purchase': the valid split") == 1  # once, not every epoch
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    for record in history:  # purchase has no valid AUC: early stopping watches click's alone
        assert record["valid"]["purchase"]["auc"] is None and record["valid"]["click"]["auc"] is not None
        assert record["monitor"]["mean.auc"] == pytest.approx(record["valid"]["click"]["auc"])
    best = max(history, key=lambda r: r["valid"]["click"]["auc"])["epoch"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"] == best


def test_a_monitored_task_without_a_value_keeps_the_last_epoch(
    capsys, no_purchase_outside_train, file_config, tmp_path
):
    config = file_config(no_purchase_outside_train, epochs=3, patience=1, monitor="purchase.auc")
    code, _, err = cli(capsys, "train", config, "--out", tmp_path / "run")
    assert code == 0, err
    assert "so train.monitor 'purchase.auc' has no value (early stopping keeps the last epoch)" in err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"] == 3


# -- numeric options out of range -----------------------------------------------------------------
@pytest.mark.parametrize("port", [0, 65536, 99999])
def test_serve_port_out_of_range(capsys, trained_run, port):
    assert_user_error(cli(capsys, "serve", trained_run, "--port", port), f"--port: expected 1..65535, got {port}")


@pytest.mark.parametrize(
    "args, needles",
    [
        (("demo", "--rows", -1), ("--rows", "-1")),
        (("demo", "--epochs", 0), ("--epochs", "0")),
        (("compare", "nope.yaml", "--seeds", 0), ("--seeds: expected an integer >= 1, got 0",)),
        (("simulate", "--rows", -5, "--out", "x.csv"), ("rows", "-5")),
        (("simulate", "--rows", 50, "--correlation", 2, "--out", "x.csv"), ("correlation", "[0, 1]")),
    ],
)
def test_numeric_options_out_of_range_are_one_line_errors(capsys, tmp_path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    assert_user_error(cli(capsys, *args), *needles)
    assert not list(tmp_path.iterdir())


def test_a_simulator_setting_out_of_range_in_a_config(capsys, config_file, tmp_path):
    assert_user_error(cli(capsys, "train", config_file, "--out", tmp_path / "run", "--set", "data.synthetic.rows=5"),
                      "data.synthetic", "page_size")  # fmt: skip
