"""Encoder: vocabularies, OOV and missing values, numeric transforms, sequences, labels and sample
spaces, JSON persistence. Expected values are computed by hand with numpy."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pyarrow as pa
import pytest
import torch

from mtlrec.config import SplitConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.encode import Encoder
from mtlrec.data.split import split_table
from mtlrec.data.synthetic import default_schema
from mtlrec.errors import DataError, RunError
from mtlrec.spec import FeatureSpec, Schema, TaskSpec

LABEL = TaskSpec("y", "binary")


def schema(*features: FeatureSpec, tasks: tuple[TaskSpec, ...] = (LABEL,)) -> Schema:
    return Schema(features=features, tasks=tasks)


def encode(feature: FeatureSpec, train: list, data: list | None = None, *, type=None):
    """Fit one feature on ``train`` and encode ``data`` (default: train) without labels."""
    enc = Encoder(schema(feature)).fit(pa.table({feature.source: pa.array(train, type)}))
    rows = train if data is None else data
    return enc, enc.transform(pa.table({feature.source: pa.array(rows, type)}), labels=False)


# -- categorical ---------------------------------------------------------------------------------
def test_unseen_and_missing_categories_map_to_zero():
    enc, out = encode(FeatureSpec("c", "categorical"), ["a", "b", "a", None], ["a", "b", "zzz", None])
    assert enc.vocabs_["c"] == ["a", "b"]  # most frequent first; null is not a value
    assert out.cat[:, 0].tolist() == [1, 2, 0, 0]
    assert enc.layout().cat_sizes == (3,)  # index 0 included


def test_min_count_drops_rare_values():
    train = ["a"] * 3 + ["b"] * 2 + ["c"]
    enc, out = encode(FeatureSpec("c", "categorical", min_count=2), train, ["a", "b", "c"])
    assert enc.vocabs_["c"] == ["a", "b"]
    assert out.cat[:, 0].tolist() == [1, 2, 0]


def test_max_size_keeps_the_most_frequent():
    train = ["rare"] + ["top"] * 4 + ["mid"] * 2 + ["low"] * 1 + ["second"] * 3
    enc, out = encode(FeatureSpec("c", "categorical", max_size=2), train, ["top", "second", "mid", "rare"])
    assert enc.vocabs_["c"] == ["top", "second"]
    assert out.cat[:, 0].tolist() == [1, 2, 0, 0]


def test_integer_and_float_ids_are_the_same_category():
    enc, _ = encode(FeatureSpec("c", "categorical"), [3, 7, 3], type=pa.int64())
    out = enc.transform(pa.table({"c": pa.array([3.0, 7.0, 8.0])}), labels=False)
    assert out.cat[:, 0].tolist() == [1, 2, 0]


def test_the_encoder_is_fit_on_the_train_split_only(shop_table):
    tables, _ = split_table(shop_table, SplitConfig(method="user", column="user_id", valid=0.2, test=0.2), "shop")
    base = default_schema()
    schema = dataclasses.replace(base, features=(FeatureSpec("user_id", "categorical"), *base.features))
    enc = Encoder(schema).fit(tables["train"])
    assert set(enc.vocabs_["user_id"]) == {str(u) for u in tables["train"]["user_id"].to_pylist()}
    user = [f.name for f in enc.schema.features if f.kind == "categorical"].index("user_id")
    assert (enc.transform(tables["train"]).cat[:, user] > 0).all()
    assert (enc.transform(tables["valid"]).cat[:, user] == 0).all()  # valid users are never in train


# -- numeric -------------------------------------------------------------------------------------
def test_missing_numbers_get_the_train_mean_and_an_indicator():
    enc, out = encode(FeatureSpec("x", "numeric", transform="none"), [1.0, None, 3.0, float("nan")])
    assert enc.layout().dense_names == ("x", "x__missing")
    np.testing.assert_allclose(out.dense[:, 0].numpy(), [1, 2, 3, 2])
    np.testing.assert_array_equal(out.dense[:, 1].numpy(), [0, 1, 0, 1])


def test_explicit_fill_value():
    _, out = encode(FeatureSpec("x", "numeric", transform="none", fill=-5.0), [1.0, None, 3.0])
    np.testing.assert_allclose(out.dense[:, 0].numpy(), [1, -5, 3])


def test_no_indicator_when_train_had_no_missing_values():
    enc, out = encode(FeatureSpec("x", "numeric", transform="none"), [1.0, 2.0, 6.0], [None, 4.0])
    assert enc.layout().dense_names == ("x",)
    np.testing.assert_allclose(out.dense[:, 0].numpy(), [3.0, 4.0])  # NaN -> train mean


def test_missing_indicator_can_be_forced_on_and_off():
    on, out = encode(FeatureSpec("x", "numeric", missing_indicator=True), [1.0, 2.0], [None, 2.0])
    assert on.layout().dense_names == ("x", "x__missing")
    np.testing.assert_array_equal(out.dense[:, 1].numpy(), [1, 0])
    off, out = encode(FeatureSpec("x", "numeric", missing_indicator=False), [1.0, None], [None, 2.0])
    assert off.layout().dense_names == ("x",)
    assert out.dense.shape == (2, 1)


def test_numeric_column_with_text_names_column_and_row():
    enc, _ = encode(FeatureSpec("x", "numeric"), [1.0, 2.0])
    with pytest.raises(DataError, match=r"column 'x' in my.csv row 3: expected a number, got 'N/A'"):
        enc.transform(pa.table({"x": ["1", " 2.5 ", "N/A"]}), labels=False, where="my.csv")


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")])
def test_infinite_numbers_name_column_and_row(bad):
    feature = FeatureSpec("x", "numeric")
    with pytest.raises(DataError, match=r"column 'x' in train row 2: expected a finite number"):
        Encoder(schema(feature)).fit(pa.table({"x": [1.0, bad]}))
    enc, _ = encode(feature, [1.0, 2.0])
    with pytest.raises(DataError, match=r"column 'x' in data row 3: expected a finite number"):
        enc.transform(pa.table({"x": [1.0, 2.0, bad]}), labels=False)


RNG = np.random.default_rng(0)
TRAIN_X = RNG.lognormal(1.0, 1.0, 50)
VALID_X = np.concatenate([RNG.lognormal(1.0, 1.0, 10), [0.0, 1e4, -3.0]])


@pytest.mark.parametrize(
    "transform, expected",
    [
        ("standardize", lambda x: (x - TRAIN_X.mean()) / TRAIN_X.std()),
        ("log1p", lambda x: (np.sign(x) * np.log1p(np.abs(x)) - np.log1p(TRAIN_X).mean()) / np.log1p(TRAIN_X).std()),
        ("minmax", lambda x: (x - TRAIN_X.min()) / (TRAIN_X.max() - TRAIN_X.min())),
        ("none", lambda x: x),
    ],
)
def test_numeric_transforms_use_train_statistics(transform, expected):
    _, out = encode(FeatureSpec("x", "numeric", transform=transform), TRAIN_X.tolist(), VALID_X.tolist())
    np.testing.assert_allclose(out.dense[:, 0].numpy(), expected(VALID_X).astype(np.float32), rtol=1e-6, atol=1e-6)


def test_constant_column_does_not_divide_by_zero():
    _, out = encode(FeatureSpec("x", "numeric"), [2.0, 2.0, 2.0], [2.0, 3.0])
    np.testing.assert_allclose(out.dense[:, 0].numpy(), [0.0, 1.0])


def test_all_missing_numeric_train_column_is_an_error():
    with pytest.raises(DataError, match="'x'.*no values"):
        encode(FeatureSpec("x", "numeric"), [None, None], type=pa.float64())


# -- sequences -----------------------------------------------------------------------------------
def test_text_and_list_sequences_give_the_same_ids():
    lists = [[5, 3, 5], [], None, [7], [3, 3, 9, 5]]
    texts = ["5|3|5", "", None, "7", "3|3|9|5"]
    feature = FeatureSpec("s", "sequence", max_len=10)
    enc_list, from_list = encode(feature, lists, type=pa.list_(pa.int32()))
    enc_text, from_text = encode(feature, texts)
    assert enc_list.vocabs_ == enc_text.vocabs_
    assert torch.equal(from_list.seq, from_text.seq)
    # an encoder fitted on lists reads the same rows written as text (a CSV round trip)
    assert torch.equal(enc_list.transform(pa.table({"s": texts}), labels=False).seq, from_list.seq)
    vocab = enc_list.vocabs_["s"]
    ids = lambda values: [vocab.index(str(v)) + 1 for v in values]  # noqa: E731
    assert from_list.seq.shape == (5, 1, 10)
    assert from_list.seq[0, 0, :3].tolist() == ids([5, 3, 5])
    assert from_list.seq[1].sum() == 0 and from_list.seq[2].sum() == 0  # empty and null
    assert from_list.seq[4, 0, :4].tolist() == ids([3, 3, 9, 5])


def test_sequences_are_truncated_to_their_first_max_len_values():
    enc, out = encode(FeatureSpec("s", "sequence", max_len=2), ["a|b|c|d", "c", "d|a"])
    vocab = enc.vocabs_["s"]
    assert out.seq.shape == (3, 1, 2)
    assert out.seq[0, 0].tolist() == [vocab.index("a") + 1, vocab.index("b") + 1]
    assert out.seq[1, 0].tolist() == [vocab.index("c") + 1, 0]
    assert enc.layout().seq_lens == (2,)


def test_sequence_unseen_values_and_empty_tokens():
    enc, out = encode(FeatureSpec("s", "sequence", max_len=4), ["a|b", "b"], ["a||x|b", "", None])
    a, b = (enc.vocabs_["s"].index(v) + 1 for v in "ab")
    assert out.seq[0, 0].tolist() == [a, 0, b, 0]  # empty token dropped, unseen 'x' -> 0
    assert out.seq[1:].sum() == 0


@pytest.mark.parametrize(
    "column",
    [pa.array([7, None, 3]), pa.array([7.0, None, 3.0]), pa.array(["7", "", "3"])],
    ids=["int", "float", "text"],
)
def test_csv_sequences_of_single_values_read_as_numbers(column):
    """A CSV reader infers numbers when no row holds a separator; the ids must not change."""
    enc, _ = encode(FeatureSpec("s", "sequence", max_len=2), ["7|3", "3"])
    out = enc.transform(pa.table({"s": column}), labels=False)
    seven, three = (enc.vocabs_["s"].index(v) + 1 for v in ("7", "3"))
    assert out.seq[:, 0].tolist() == [[seven, 0], [0, 0], [three, 0]]
    empty = enc.transform(pa.table({"s": pa.nulls(2)}), labels=False)  # every row empty: a null column
    assert empty.seq.sum() == 0


def test_custom_separator():
    enc, out = encode(FeatureSpec("s", "sequence", separator=",", max_len=3), ["a,b", "b"])
    assert sorted(enc.vocabs_["s"]) == ["a", "b"]
    assert (out.seq[0, 0, :2] > 0).all()


# -- labels and sample spaces --------------------------------------------------------------------
def label_encoder(task: TaskSpec, where: str | None = None) -> Encoder:
    tasks = (task,) if where is None else (TaskSpec(where, "binary"), task)
    enc = Encoder(schema(FeatureSpec("f", "numeric"), tasks=tasks))
    return enc.fit(pa.table({"f": [1.0, 2.0, 3.0, 4.0]}))


@pytest.mark.parametrize(
    "task, values, row, got",
    [
        (TaskSpec("y", "binary"), [0, 1, 2, 0], 3, "2"),
        (TaskSpec("y", "binary"), [0.0, None, 1.0, 0.0], 2, "a missing value"),
        (TaskSpec("y", "binary"), [0.0, 1.0, 1.0, 0.5], 4, "0.5"),
        (TaskSpec("y", "multiclass", n_classes=3), [0, 2, 1, 3], 4, "3"),
        (TaskSpec("y", "multiclass", n_classes=3), [0, -1, 1, 2], 2, "-1"),
        (TaskSpec("y", "multiclass", n_classes=3), [0, 1.5, 1, 2], 2, "1.5"),
        (TaskSpec("y", "multilabel", n_classes=3), ["0|1", "", "2|3", "1"], 3, "3"),
        (TaskSpec("y", "multilabel", n_classes=3), ["0|1", "", "1", "1|2|x"], 4, "'x'"),
        (TaskSpec("y", "regression"), [1.0, 2.0, float("nan"), 0.5], 3, "nan"),
        (TaskSpec("y", "regression"), [1.0, 2.0, 0.5, float("-inf")], 4, "-inf"),
        (TaskSpec("y", "regression"), [1.0, None, 2.0, 0.5], 2, "a missing value"),
        (TaskSpec("y", "regression", transform="log1p"), [1.0, 0.0, 2.0, -1.0], 4, "-1"),
        (TaskSpec("y", "regression", loss="poisson"), [1.0, 0.0, -2.0, 3.0], 3, "-2"),
        (TaskSpec("y", "regression", loss="poisson"), [1.0, 0.0, 2.0, float("inf")], 4, "inf"),
    ],
    ids=["binary-2", "binary-null", "binary-half", "multiclass-n", "multiclass-neg", "multiclass-frac",
         "multilabel-range", "multilabel-text", "regression-nan", "regression-inf", "regression-null",
         "log1p-minus-one", "poisson-negative", "poisson-inf"],
)  # fmt: skip
def test_labels_outside_the_domain_name_column_row_and_value(task, values, row, got):
    """The value as the user wrote it (2, not np.float64(2.0)); a multilabel row counted as a row,
    not as the position of its label among all labels."""
    enc = label_encoder(task)
    table = pa.table({"f": [1.0, 2.0, 3.0, 4.0], "y": values})
    with pytest.raises(DataError) as err:
        enc.transform(table, where="train.csv")
    assert re.fullmatch(rf"column 'y' in train.csv row {row}: expected .*, got {re.escape(got)}", str(err.value))


def test_errors_name_the_row_of_the_file_it_came_from():
    """A table that is part of a file (a split) names the file's row, from its RowOrigin."""
    enc = label_encoder(TaskSpec("y", "binary"))
    table = pa.table({"f": [1.0, 2.0, 3.0], "y": [0, 1, 2]})
    with pytest.raises(DataError, match=r"^column 'y' in data.csv row 43: expected a 0/1 label, got 2$"):
        enc.transform(table, where=RowOrigin("data.csv", np.array([7, 3, 42])))
    numbers = FeatureSpec("f", "numeric")
    with pytest.raises(DataError, match=r"^column 'f' in data.csv row 9: expected a finite number, got inf$"):
        Encoder(schema(numbers)).fit(pa.table({"f": [1.0, np.inf]}), where=RowOrigin("data.csv", np.array([4, 8])))


def test_multilabel_list_column_out_of_range():
    enc = label_encoder(TaskSpec("y", "multilabel", n_classes=3))
    table = pa.table({"f": [1.0, 2.0], "y": pa.array([[0, 2], [1, 3]], pa.list_(pa.int64()))})
    with pytest.raises(DataError, match=r"column 'y' in data row 2"):
        enc.transform(table)


def test_label_values_are_encoded_per_kind():
    tasks = (
        TaskSpec("b", "binary"),
        TaskSpec("m", "multiclass", n_classes=3),
        TaskSpec("l", "multilabel", n_classes=3),
        TaskSpec("r", "regression", transform="log1p"),
    )
    enc = Encoder(schema(FeatureSpec("f", "numeric"), tasks=tasks)).fit(pa.table({"f": [1.0, 2.0]}))
    out = enc.transform(pa.table({"f": [1.0, 2.0], "b": [True, False], "m": [2, 0], "l": ["0|2", ""],
                                  "r": [0.0, 3.0]}))  # fmt: skip
    assert out.labels["b"].tolist() == [1.0, 0.0]
    assert out.labels["m"].dtype == torch.int64 and out.labels["m"].tolist() == [2, 0]
    assert out.labels["l"].tolist() == [[1, 0, 1], [0, 0, 0]]
    np.testing.assert_allclose(out.labels["r"].numpy(), np.log1p([0.0, 3.0]), rtol=1e-6)
    assert all(m.all() for m in out.masks.values())


def test_poisson_counts_are_divided_by_their_train_mean_and_decoded_back():
    """A poisson task's counts stay counts: divided by the train mean over its sample space (no
    shift), so 0 stays 0; the error names what a count must be."""
    task = TaskSpec("y", "regression", loss="poisson", where="click")
    enc = label_encoder(task, where="click")
    train = pa.table({"f": [1.0, 2.0, 3.0, 4.0], "click": [1, 1, 0, 1], "y": [0.0, 2.0, -9.0, 4.0]})
    enc = Encoder(enc.schema).fit(train)
    assert enc.targets_["y"] == (0.0, 2.0)  # the mean of 0, 2, 4 (the row outside the space is not a count)
    out = enc.transform(train)
    assert out.labels["y"].tolist() == [0.0, 1.0, 0.0, 2.0]
    from mtlrec.evaluation import true_labels

    assert true_labels(task, out).tolist() == [0.0, 2.0, 0.0, 4.0]
    with pytest.raises(DataError, match=r"^column 'y' in sales.csv row 2: expected a count >= 0 \(loss poisson\), got -1$"):
        enc.transform(pa.table({"f": [1.0, 2.0], "click": [1, 1], "y": [1, -1]}), where="sales.csv")
    none_sold = Encoder(enc.schema).fit(pa.table({"f": [1.0, 2.0], "click": [1, 1], "y": [0.0, 0.0]}))
    assert none_sold.targets_["y"] == (0.0, 1.0)  # nothing to scale by: counts as they are


@pytest.mark.parametrize(
    "task, outside",
    [
        (TaskSpec("y", "binary", where="click"), float("nan")),
        (TaskSpec("y", "binary", where="click"), 7.0),
        (TaskSpec("y", "regression", where="click"), float("nan")),
        (TaskSpec("y", "multiclass", n_classes=2, where="click"), 5.0),
    ],
)
def test_labels_outside_the_sample_space_are_not_checked(task, outside):
    enc = label_encoder(task, where="click")
    click = [1, 0, 1, 0]
    out = enc.transform(pa.table({"f": [1.0, 2.0, 3.0, 4.0], "click": click, "y": [1.0, outside, 0.0, outside]}))
    assert out.masks["y"].tolist() == [True, False, True, False]
    assert out.masks["click"].all()
    assert torch.isfinite(out.labels["y"].float()).all()
    with pytest.raises(DataError, match=r"column 'y' in data row 2"):  # inside the space it is checked
        enc.transform(pa.table({"f": [1.0, 2.0, 3.0, 4.0], "click": [1, 1, 1, 0], "y": [1.0, outside, 0.0, 0.0]}))


def test_multilabel_outside_the_sample_space_is_not_checked():
    enc = label_encoder(TaskSpec("y", "multilabel", n_classes=2, where="click"), where="click")
    out = enc.transform(pa.table({"f": [1.0, 2.0], "click": [0, 1], "y": ["9", "1"]}))
    assert out.labels["y"].tolist() == [[0, 0], [0, 1]]


def test_where_column_must_be_binary():
    enc = label_encoder(TaskSpec("y", "binary", where="click"), where="click")
    with pytest.raises(DataError, match=r"column 'click' in data row 2"):
        enc.transform(pa.table({"f": [1.0, 2.0], "click": [1, 2], "y": [0, 1]}))


def test_masks_equal_the_where_columns(shop_table):
    enc = Encoder(default_schema()).fit(shop_table)
    out = enc.transform(shop_table)
    for task in enc.schema.tasks:
        expected = (
            np.ones(shop_table.num_rows, dtype=bool)
            if task.where is None
            else np.asarray(shop_table[task.where]).astype(bool)
        )
        np.testing.assert_array_equal(out.masks[task.name].numpy(), expected, err_msg=task.name)
    assert 0 < out.masks["purchase"].sum() < shop_table.num_rows  # a real sub-space


def test_missing_label_column_is_named():
    enc = label_encoder(TaskSpec("y", "binary"))
    with pytest.raises(DataError, match=r"data: missing column\(s\) 'y'"):
        enc.transform(pa.table({"f": [1.0]}))
    assert enc.transform(pa.table({"f": [1.0]}), labels=False).labels == {}


# -- persistence ---------------------------------------------------------------------------------
def assert_same_encoding(a, b):
    for field in ("cat", "seq", "dense"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.labels.keys() == b.labels.keys()
    for name in a.labels:
        assert torch.equal(a.labels[name], b.labels[name]), name
        assert torch.equal(a.masks[name], b.masks[name]), name
    np.testing.assert_array_equal(a.groups, b.groups)


def test_json_round_trip_gives_identical_encodings(shop_table, tmp_path):
    half = shop_table.num_rows // 2
    train, other = shop_table.slice(0, half), shop_table.slice(half)
    schema_ = default_schema()
    features = list(schema_.features) + [FeatureSpec("rating_mm", "numeric", column="item_rating",
                                                     transform="minmax", missing_indicator=True)]  # fmt: skip
    enc = Encoder(Schema(features=tuple(features), tasks=schema_.tasks, group=schema_.group)).fit(train)
    restored = Encoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert restored.schema == enc.schema
    assert restored.layout() == enc.layout()
    assert_same_encoding(enc.transform(other), restored.transform(other))
    enc.save(tmp_path / "encoder.json")
    assert_same_encoding(enc.transform(other), Encoder.load(tmp_path / "encoder.json").transform(other))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d.update(format=99),
        lambda d: d.pop("vocabularies"),
        lambda d: d["numeric"].clear(),
        lambda d: d["schema"]["features"][0].update(kind="picture"),
    ],
    ids=["format", "no-vocabularies", "no-numeric-state", "bad-schema"],
)
def test_invalid_encoder_json_is_a_run_error(corrupt):
    enc = Encoder(schema(FeatureSpec("c", "categorical"), FeatureSpec("x", "numeric")))
    enc.fit(pa.table({"c": ["a"], "x": [1.0]}))
    d = json.loads(json.dumps(enc.to_dict()))
    corrupt(d)
    with pytest.raises(RunError, match="enc.json: not a valid encoder"):
        Encoder.from_dict(d, where="enc.json")


def test_transform_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="before fit"):
        Encoder(schema(FeatureSpec("x", "numeric"))).transform(pa.table({"x": [1.0]}), labels=False)


def test_regression_labels_are_standardised_on_their_sample_space_and_decoded_back(shop_table):
    from mtlrec.evaluation import true_labels

    enc = Encoder(default_schema()).fit(shop_table)
    out = enc.transform(shop_table)
    task = enc.schema.task("order_value")
    mask = out.masks["order_value"].numpy()
    y = out.labels["order_value"].numpy()[mask].astype(np.float64)
    assert abs(y.mean()) < 1e-5 and abs(y.std() - 1) < 1e-4
    raw = shop_table["order_value"].to_numpy()[mask]
    np.testing.assert_allclose(true_labels(task, out)[mask], raw, rtol=1e-5)
    again = Encoder.from_dict(json.loads(json.dumps(enc.to_dict()))).transform(shop_table)
    assert torch.equal(again.labels["order_value"], out.labels["order_value"])


@pytest.mark.parametrize("lists", [[[1, 2, 3], [3, 2, 1]], [[], []], [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], [[1], [2, 3]]])
@pytest.mark.parametrize("text", [False, True], ids=["ints", "text"])
def test_sequences_of_equal_or_ragged_length_against_a_loop(lists, text):
    """Lists all of one length take a reshape; ragged ones a scatter: both as a per-value loop."""
    values = [[str(v) for v in row] for row in lists] if text else lists
    schema = Schema(features=(FeatureSpec("s", "sequence", max_len=3),), tasks=(TaskSpec("y", "binary"),))
    table = pa.table({"s": pa.array(values, pa.list_(pa.string() if text else pa.int64())), "y": [0, 1]})
    enc = Encoder(schema).fit(table)
    index = {v: i + 1 for i, v in enumerate(enc.vocabs_["s"])}
    expected = [[index[str(v)] for v in row[:3]] + [0] * (3 - len(row[:3])) for row in lists]
    assert enc.transform(table).seq[:, 0].tolist() == expected
