"""census_income: the .data file is train, the .test file is halved (seeded) into valid and test;
labels, missing values, default schema; malformed lines name their file and line."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mtlrec.config import load_config
from mtlrec.data.datasets.census_income import COLUMNS, NUMERIC
from mtlrec.errors import ConfigError, DataError

MARRIED = "Married-civilian spouse present"


def line(i: int, year: int, fields: dict[str, str] | None = None) -> str:
    """One census line: year marks the file it came from, instance_weight the row."""
    values = []
    for c in COLUMNS:
        if c in NUMERIC:
            v = str(18 + (i * 7) % 60)
        elif c == "instance_weight":
            v = f"{1000 * year + i}.5"
        elif c == "income":
            v = "50000+." if i % 4 == 0 else "- 50000."
        elif c == "marital_stat":
            v = "Never married" if i % 3 == 0 else MARRIED
        elif c == "year":
            v = str(year)
        elif c == "class_of_worker":
            v = "?" if i % 5 == 0 else f"worker {i % 4}"
        else:
            v = f"{c[:4]} {i % 3}"
        values.append((fields or {}).get(c, v))
    return ", ".join(values)


def write_census(folder, n_train=30, n_test=21, bad: dict[int, dict[str, str]] | None = None, gz_test=True):
    folder.mkdir(parents=True, exist_ok=True)
    bad = bad or {}
    train = "\n".join(line(i, 94, bad.get(i)) for i in range(n_train)) + "\n"
    (folder / "census-income.data").write_text(train)
    test = "\n".join(line(i, 95) for i in range(n_test)) + "\n"
    if gz_test:
        with gzip.open(folder / "census-income.test.gz", "wt") as f:
            f.write(test)
    else:
        (folder / "census-income.test").write_text(test)
    return folder


def weights(table) -> list[float]:
    return table["instance_weight"].to_pylist()


def test_train_is_the_data_file_and_the_test_file_is_halved(tmp_path, load):
    folder = write_census(tmp_path / "census")
    src = load("census_income", folder)
    s = src.splits
    assert [s[k].num_rows for k in ("train", "valid", "test")] == [30, 11, 10]
    assert weights(s["train"]) == [94000.5 + i for i in range(30)]  # every .data row, in file order
    assert set(s["train"]["year"].to_pylist()) == {"94"}
    held = weights(s["valid"]) + weights(s["test"])
    assert sorted(held) == [95000.5 + i for i in range(21)] and not set(weights(s["valid"])) & set(weights(s["test"]))
    assert src.table.num_rows == 51
    again = load("census_income", folder).splits
    other = load("census_income", folder, split={"seed": 1}).splits
    assert weights(again["valid"]) == weights(s["valid"])  # seeded
    assert weights(other["valid"]) != weights(s["valid"])


def test_labels_missing_values_and_default_schema(tmp_path, load):
    src = load("census_income", write_census(tmp_path / "census"))
    train = src.splits["train"]
    i = np.arange(30)
    assert train["income"].to_pylist() == (i % 4 == 0).astype(int).tolist()
    assert train["marital"].to_pylist() == (i % 3 == 0).astype(int).tolist()
    assert train["class_of_worker"].to_pylist()[:2] == [None, "worker 1"]  # '?' is missing
    assert train["age"].to_pylist()[:3] == [18.0, 25.0, 32.0]
    schema = src.schema
    names = [f.name for f in schema.features]
    assert len(names) == 39 and not {"instance_weight", "income", "marital_stat", "marital"} & set(names)
    assert {f.name: f.transform for f in schema.features if f.kind == "numeric"} == NUMERIC
    assert schema.task_names == ["income", "marital"]


def test_columns_txt_names_the_columns(tmp_path, load):
    folder = write_census(tmp_path / "census")
    (folder / "columns.txt").write_text("\n".join(c if c != "year" else "survey_year" for c in COLUMNS) + "\n")
    src = load("census_income", folder)
    assert "survey_year" in src.splits["train"].column_names and "year" not in src.splits["train"].column_names
    (folder / "columns.txt").write_text("\n".join(c for c in COLUMNS if c != "income"))
    with pytest.raises(DataError, match=r"columns.txt: no column\(s\) income"):
        load("census_income", folder)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({2: {"age": "forty"}}, r"census-income.data line 3: column 'age': expected a number, got 'forty'"),
        ({5: {"income": "50000"}}, r"census-income.data line 6: column 'income': expected '- 50000.' or '50000\+.'"),
    ],
)
def test_bad_values_name_file_line_and_column(tmp_path, load, bad, message):
    with pytest.raises(DataError, match=message):
        load("census_income", write_census(tmp_path / "census", bad=bad))


def test_wrong_field_count_names_the_line(tmp_path, load):
    folder = write_census(tmp_path / "census", gz_test=False)
    lines = (folder / "census-income.test").read_text().splitlines()
    lines[3] = lines[3].rsplit(", ", 1)[0]
    (folder / "census-income.test").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"census-income.test line 4: expected 42 fields separated by ',', got 41"):
        load("census_income", folder)


def test_path_and_split_errors(tmp_path, load):
    with pytest.raises(ConfigError, match="data.path: required when data.source is 'census_income'"):
        load("census_income", "")
    with pytest.raises(DataError, match="expected one file census-income.test"):
        (tmp_path / "only").mkdir()
        (tmp_path / "only" / "census-income.data").write_text(line(0, 94) + "\n")
        load("census_income", tmp_path / "only")
    with pytest.raises(ConfigError, match="data.split.method: 'census_income' uses the data set's own"):
        load("census_income", write_census(tmp_path / "census"), split={"method": "time", "column": "age"})


def test_shared_census_splits_as_in_the_papers(shared, load):
    folder = shared("census-income")
    src = load("census_income", folder)
    s = src.splits
    assert [s[k].num_rows for k in ("train", "valid", "test")] == [199_523, 49_881, 49_881]
    assert np.mean(s["train"]["income"]) == pytest.approx(0.0621, abs=5e-4)  # README: 6.2 %
    assert np.mean(s["train"]["marital"]) == pytest.approx(0.4335, abs=5e-4)  # README: 43.3 %
    with gzip.open(folder / "census-income.data.csv.gz", "rt") as f:  # train = the .data file, row for row
        data_weights = [float(row.split(", ")[24]) for row in f]
    np.testing.assert_array_equal(np.asarray(s["train"]["instance_weight"]), data_weights)


def test_census_config_trains_end_to_end(tmp_path):
    from mtlrec.experiment import run_experiment

    folder = write_census(tmp_path / "census", n_train=400, n_test=200)
    cfg = load_config("configs/census.yaml", [f"data.path={folder}", "train.epochs=1", "train.progress=false"])
    metrics = run_experiment(cfg, tmp_path / "run")
    assert set(metrics["test"]) >= {"income", "marital"}
    assert 0.0 <= metrics["test"]["income"]["auc"] <= 1.0


def test_numeric_categories_and_min_count_options(tmp_path, load):
    folder = write_census(tmp_path / "census")
    plain = load("census_income", folder).schema
    chosen = ["capital_gains", "weeks_worked_in_year"]
    both = load("census_income", folder, census_income={"numeric_categories": chosen, "min_count": 3}).schema
    copies = {f.name: f for f in both.features if f.name.endswith("_cat")}
    assert set(copies) == {f"{c}_cat" for c in chosen}
    assert all(f.kind == "categorical" and f.source == f.name[:-4] for f in copies.values())
    assert len(both.features) == len(plain.features) + len(chosen)
    assert {f.min_count for f in both.features if f.kind == "categorical"} == {3}
    assert {f.min_count for f in plain.features if f.kind == "categorical"} == {1}
    with pytest.raises(ConfigError, match="data.census_income.min_count: Input should be greater than or equal to 1"):
        load("census_income", folder, census_income={"min_count": 0})
    with pytest.raises(ConfigError, match="numeric_categories: 'education' is not a numeric column"):
        load("census_income", folder, census_income={"numeric_categories": ["education"]})
