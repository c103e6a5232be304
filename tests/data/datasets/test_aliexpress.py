"""aliexpress: the search_id, categorical_*, numerical_*, click, conversion CSV; folders with their
own splits; malformed lines naming file and line."""

from __future__ import annotations

import pytest

from mtlrec.config import load_config
from mtlrec.errors import DataError

CSV = """\
search_id,categorical_1,categorical_2,numerical_1,numerical_2,click,conversion
10,3,a,0.5,1.0,1,1
10,4,b,0.25,,0,0
11,3,b,0.0,2.0,1,0
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_one_file_with_default_schema(tmp_path, load):
    src = load("aliexpress", write(tmp_path / "a.csv", CSV))
    assert src.splits is None  # one file: data.split applies
    t = src.table
    assert t["numerical_1"].to_pylist() == [0.5, 0.25, 0.0]
    assert t["categorical_2"].to_pylist() == ["a", "b", "b"]
    assert t["click"].to_pylist() == [1, 0, 1] and t["conversion"].to_pylist() == [1, 0, 0]
    kinds = {f.name: f.kind for f in src.schema.features}
    assert kinds == {"categorical_1": "categorical", "categorical_2": "categorical",
                     "numerical_1": "numeric", "numerical_2": "numeric"}  # fmt: skip
    assert src.schema.group == "search_id" and src.schema.task("conversion").where == "click"
    assert all("ndcg@10" in t.metric_names and "gauc" in t.metric_names for t in src.schema.tasks)  # by query
    no_query = load("aliexpress", write(tmp_path / "b.csv", CSV.replace("search_id", "query_text")))
    assert no_query.schema.group is None and "ndcg@10" not in no_query.schema.task("click").metric_names


def test_conversion_without_click_is_dropped_with_a_warning(tmp_path, load, caplog):
    src = load("aliexpress", write(tmp_path / "a.csv", CSV + "12,5,c,0.1,0.1,0,1\n"))
    assert "a.csv: 1 row(s) with conversion=1 but click=0; dropped" in caplog.text
    assert src.table.num_rows == 3


@pytest.mark.parametrize(
    "text, message",
    [
        (CSV + "12,5,c,0.1\n", r"a.csv line 5: expected 7 fields separated by ',', got 4"),
        (CSV.replace("0.25", "n/a"), r"a.csv line 3: column 'numerical_1': expected a number, got 'n/a'"),
        (CSV.replace("11,3,b,0.0,2.0,1,0", "11,3,b,0.0,2.0,yes,0"), r"a.csv line 4: column 'click': expected a 0/1 label, got 'yes'"),
        ("search_id,x,click\n1,2,0\n", r"a.csv line 1: expected a header with search_id, categorical_\*"),
    ],
)
def test_malformed_lines(tmp_path, load, text, message):
    with pytest.raises(DataError, match=message):
        load("aliexpress", write(tmp_path / "a.csv", text))


def test_folder_needs_train_and_test_files(tmp_path, load):
    write(tmp_path / "d" / "train.csv", CSV)
    with pytest.raises(DataError, match="no test file for data source 'aliexpress'"):
        load("aliexpress", tmp_path / "d")
    write(tmp_path / "d" / "test.csv", CSV)
    src = load("aliexpress", tmp_path / "d")
    assert {k: v.num_rows for k, v in src.splits.items()} == {"train": 3, "valid": 2, "test": 1}


@pytest.mark.parametrize("folder, sizes", [("fuxictr", (100, 50, 50)), ("torch_rechub", (100, 10, 10))])
def test_shared_samples(shared, load, folder, sizes):
    src = load("aliexpress", shared(f"aliexpress/{folder}"))
    assert tuple(src.splits[k].num_rows for k in ("train", "valid", "test")) == sizes
    kinds = [f.kind for f in src.schema.features]
    assert kinds.count("categorical") == 16 and kinds.count("numeric") == 63


def test_aliexpress_config_trains_end_to_end(shared, tmp_path):
    from mtlrec.experiment import run_experiment

    shared("aliexpress/fuxictr")
    cfg = load_config("configs/aliexpress.yaml", ["train.epochs=1", "train.progress=false"])
    metrics = run_experiment(cfg, tmp_path / "run")
    assert {"click", "conversion"} <= set(metrics["test"])
    assert 0 < metrics["test"]["click"]["ndcg@10"] <= 1  # ranking by search_id


def test_line_numbers_count_blank_lines(tmp_path, load):
    text = CSV.replace("\n10,4", "\n\n\n10,4").replace("0.25", "x")  # the bad row is now on line 5
    with pytest.raises(DataError, match=r"a.csv line 5: column 'numerical_1': expected a number, got 'x'"):
        load("aliexpress", write(tmp_path / "a.csv", text))


def rows_csv(n: int, bad: int | None = None, unclicked: tuple[int, ...] = ()) -> str:
    """n data rows; row ``bad`` (1-based) holds a number too large for a float (read as inf); the
    ``unclicked`` rows have a conversion without a click (dropped when read)."""
    lines = ["search_id,categorical_1,numerical_1,click,conversion"]
    for i in range(1, n + 1):
        click, conversion = (0, 1) if i in unclicked else (i % 2, i % 4 == 1)
        lines.append(f"{i // 3},{i % 5},{'1e999' if i == bad else i / 10},{click},{int(conversion)}")
    return "\n".join(lines) + "\n"


def prepare_errors(path):
    from mtlrec.config import parse_config
    from mtlrec.experiment import prepare

    with pytest.raises(DataError) as err:
        prepare(parse_config({"data": {"source": "aliexpress", "path": str(path)}}))
    return str(err.value)


def test_a_bad_value_names_the_row_of_its_own_file_in_a_folder(tmp_path):
    """The test file is halved into valid and test, and a dropped row shifts the positions: the error
    still names test.csv and the row the user finds there."""
    write(tmp_path / "d" / "train.csv", rows_csv(12))
    for bad in (7, 8):  # one lands in valid, the other in test (data.split.seed 0)
        write(tmp_path / "d" / "test.csv", rows_csv(9, bad=bad, unclicked=(2,)))
        message = prepare_errors(tmp_path / "d")
        assert message == f"column 'numerical_1' in test.csv row {bad}: expected a finite number, got inf"


def test_a_bad_value_names_its_row_in_one_file_after_dropped_rows(tmp_path):
    path = write(tmp_path / "a.csv", rows_csv(40, bad=31, unclicked=(3, 5, 30)))
    assert prepare_errors(path) == "column 'numerical_1' in a.csv row 31: expected a finite number, got inf"


def test_a_test_file_too_small_to_halve(tmp_path, load):
    write(tmp_path / "d" / "train.csv", rows_csv(12))
    write(tmp_path / "d" / "test.csv", rows_csv(1))
    with pytest.raises(DataError, match=r"test.csv has too few rows \(1\) to halve into a valid and a test split"):
        load("aliexpress", tmp_path / "d")
