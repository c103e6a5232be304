"""Class labels as values: which classes the train split gives, how any split is read against them,
the errors naming file, row and value, the stream's fit equal to the in-memory one, and encoders
without classes (index labels, older runs) read as before."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.data.columns import RowOrigin
from mtlrec.data.encode import Encoder
from mtlrec.data.fitting import EncoderFit
from mtlrec.errors import DataError
from mtlrec.spec import FeatureSpec, Schema, TaskSpec

X = FeatureSpec("x", "categorical")


def fit(task: TaskSpec, labels: list, where="train.csv", **columns) -> Encoder:
    table = pa.table({"x": ["a"] * len(labels), task.source: labels, **columns})
    return Encoder(Schema(features=(X,), tasks=(task,))).fit(table, where=where)


def encode(enc: Encoder, labels: list, where="valid.csv", **columns):
    table = pa.table({"x": ["a"] * len(labels), enc.schema.tasks[0].source: labels, **columns})
    return enc.transform(table, where=where).labels[enc.schema.tasks[0].name].numpy()


@pytest.mark.parametrize(
    "labels, classes",
    [
        ([3, 1, 5, 2, 4, 5], ["1", "2", "3", "4", "5"]),  # ratings 1-5: by value
        ([10, 2, 1], ["1", "2", "10"]),  # numbers by value, not as text
        ([2.0, 1.5, 1.0], ["1", "1.5", "2"]),
        (["Pants", "Dresses", "Tops", "Dresses"], ["Dresses", "Pants", "Tops"]),  # text by text
        (["b", "10", "2"], ["10", "2", "b"]),  # not all numbers: all by text
    ],
)
def test_labels_that_are_values_give_the_train_splits_classes_in_order(labels, classes):
    enc = fit(TaskSpec("y", "multiclass"), labels)
    assert enc.class_names("y") == classes and enc.schema.task("y").n_classes == len(classes)
    want = [classes.index(str(v).removesuffix(".0")) for v in labels]
    assert encode(enc, labels).tolist() == want


@pytest.mark.parametrize("labels, n", [([0, 2, 1, 2], None), ([0, 1, 1], 4), ([3, 0], 4)])
def test_labels_that_are_class_indices_stay_indices(labels, n):
    enc = fit(TaskSpec("y", "multiclass", n_classes=n), labels)
    assert enc.class_names("y") is None and "classes" not in enc.to_dict()
    assert enc.schema.task("y").n_classes == (n or 3)
    assert encode(enc, labels).tolist() == labels


def test_n_classes_must_agree_with_the_values():
    enc = fit(TaskSpec("y", "multiclass", n_classes=5), [1, 2, 3, 4, 5])  # 1-based ratings: 5 values
    assert enc.class_names("y") == ["1", "2", "3", "4", "5"]
    with pytest.raises(DataError) as err:
        fit(TaskSpec("y", "multiclass", n_classes=4), [0, 1, 2, 3, 7, 1.5], where="t.csv")
    assert str(err.value).startswith("column 'y' in t.csv row 5: expected a class index in 0..3, got 7 (task 'y' "
                                     "has n_classes 4, but the train split has 6 distinct labels")  # fmt: skip


def test_one_class_is_not_enough():
    with pytest.raises(DataError, match="task 'y': column 'y' has only 'a' in the train split; a multiclass task "
                                        "needs at least 2 classes"):  # fmt: skip
        fit(TaskSpec("y", "multiclass"), ["a", "a"])


def test_unseen_and_missing_classes_name_file_row_and_value():
    enc = fit(TaskSpec("y", "multiclass"), ["Tops", "Dresses"])
    with pytest.raises(DataError) as err:
        encode(enc, ["Tops", "Tops", "Hats"], where=RowOrigin("valid.csv", np.array([4, 8, 9])))
    assert str(err.value) == ("column 'y' in valid.csv row 10: expected one of the train split's classes "
                              "(Dresses, Tops), got 'Hats'")  # fmt: skip
    with pytest.raises(DataError, match="valid.csv row 2: expected one of .*, got a missing value"):
        encode(enc, ["Tops", None])
    many = fit(TaskSpec("y", "multiclass"), [f"c{i:02d}" for i in range(12)])
    with pytest.raises(DataError, match=r"\(c00, c01, .*, c09, \.\.\. \(12 in all\)\), got 'zz'"):
        encode(many, ["zz"])


def test_labels_outside_the_sample_space_are_not_read():
    task = TaskSpec("y", "multiclass", where="c")
    enc = fit(task, ["Tops", "junk", "Dresses"], c=[1, 0, 1])
    assert enc.class_names("y") == ["Dresses", "Tops"]
    assert encode(enc, ["Dresses", None, "new"], c=[1, 0, 0]).tolist() == [0, 0, 0]


def test_multilabel_names_as_text_or_lists():
    task = TaskSpec("tags", "multilabel")
    enc = fit(task, ["sale|new", "", None, "new"])
    assert enc.class_names("tags") == ["new", "sale"]
    want = [[1, 1], [0, 0], [0, 0], [1, 0]]
    assert encode(enc, ["sale|new", "", None, "new"]).tolist() == want
    assert encode(enc, pa.array([["sale", "new"], [], None, ["new"]])).tolist() == want
    with pytest.raises(DataError, match=r"column 'tags' in valid.csv row 2: expected labels among the train "
                                        r"split's classes \(new, sale\), got 'old'"):  # fmt: skip
        encode(enc, ["new", "sale|old"])


def test_multilabel_indices_stay_indices():
    enc = fit(TaskSpec("tags", "multilabel", n_classes=3), ["0|2", "1", ""])
    assert enc.class_names("tags") is None
    assert encode(enc, ["0|2", "1"]).tolist() == [[1, 0, 1], [0, 1, 0]]
    with pytest.raises(DataError, match="expected label indices in 0..2, got 3"):
        encode(enc, ["3"])


def test_classes_round_trip_and_older_encoders_load():
    enc = fit(TaskSpec("y", "multiclass"), [5, 1, 3])
    again = Encoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.class_names("y") == ["1", "3", "5"] and again.schema == enc.schema
    assert encode(again, [1, 5]).tolist() == [0, 2]
    old = fit(TaskSpec("y", "multiclass", n_classes=3), [0, 2]).to_dict()  # as runs before classes wrote it
    assert "classes" not in old and Encoder.from_dict(old).class_names("y") is None


def test_the_streamed_fit_chooses_the_same_classes():
    task = TaskSpec("y", "multiclass")
    labels = ["b", "a", "c", "a", "d", "b"]
    table = pa.table({"x": ["a"] * 6, "y": labels})
    schema = Schema(features=(X,), tasks=(task,))
    fitted = EncoderFit(schema).update(table.slice(0, 2)).update(table.slice(2)).finish()
    assert fitted.class_names("y") == Encoder(schema).fit(table).class_names("y") == ["a", "b", "c", "d"]
    with pytest.raises(DataError, match="column 'y' in p2.csv row 2: expected a class index in 0..1, got 'c'"):
        schema2 = Schema(features=(X,), tasks=(TaskSpec("y", "multiclass", n_classes=2),))
        EncoderFit(schema2).update(pa.table({"x": ["a"] * 2, "y": ["0", "1"]}), "p1.csv").update(
            pa.table({"x": ["a"] * 3, "y": ["1", "c", "d"]}), "p2.csv").finish()  # fmt: skip
