"""The request-side encoder gives exactly what Encoder.transform gives from an arrow table of the
same values (unseen, missing, text and integer categories, truncated sequences), and Predictor.score
equals Predictor.predict."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pydantic
import pytest
import torch

from mtlrec.data.encode import Encoder
from mtlrec.errors import RunError
from mtlrec.serve.columns import ColumnEncoder, Same
from mtlrec.serve.schemas import Limits, request_models
from mtlrec.spec import FeatureSpec, Schema, TaskSpec


def encode_both(encoder, rows):
    """(ColumnEncoder's batch, Encoder.transform's data) for the same rows."""
    names = encoder.schema.columns(labels=False)
    fast = ColumnEncoder(encoder).encode({c: [r[c] for r in rows] for c in names}, len(rows))
    return fast, encoder.transform(pa.Table.from_pylist(rows), labels=False)


def assert_same_batch(a, b):
    assert torch.equal(a.cat, b.cat)
    assert torch.equal(a.seq, b.seq)
    assert a.dense.dtype == b.dense.dtype == torch.float32
    assert torch.equal(a.dense, b.dense)


def test_held_out_rows_encode_as_in_training(predictor, raw_rows):
    assert_same_batch(*encode_both(predictor.encoder, raw_rows))


def test_unseen_and_missing_values(predictor, raw_rows):
    rows = [dict(r) for r in raw_rows[:6]]
    rows[0].update(brand=987654, category=None, price=None, item_rating=None)  # unseen id, missing values
    rows[1].update(recent_categories=None, user_activity=3)  # an int for a numeric
    rows[2].update(recent_categories=[])
    rows[3].update(recent_categories=[99999, 3, 99998] + [1] * 30)  # unseen ids kept as 0, then truncated
    rows[4].update(hour=-1)
    fast, slow = encode_both(predictor.encoder, rows)
    assert_same_batch(fast, slow)
    assert fast.cat[0, 1] == 0 and fast.cat[0, 0] == 0  # brand unseen, category missing
    assert fast.seq[3, 0, 0] == 0 and fast.seq[3, 0, 1] > 0


def test_text_values(predictor, raw_rows):
    """Categories as text ("3" is the category 3; "03" is not) and sequences as '|'-joined text."""
    rows = []
    for r in raw_rows[:8]:
        r = dict(r)
        r["category"], r["position"] = str(r["category"]), f"0{r['position']}"
        r["recent_categories"] = "|".join(map(str, r["recent_categories"])) + "||"
        rows.append(r)
    fast, slow = encode_both(predictor.encoder, rows)
    assert_same_batch(fast, slow)
    ints, _ = encode_both(predictor.encoder, raw_rows[:8])
    assert torch.equal(fast.cat[:, 0], ints.cat[:, 0])  # "3" == 3
    assert torch.equal(fast.seq, ints.seq)
    assert (fast.cat[:, 4] == 0).all()  # "07" is not position 7


def test_a_shared_value_equals_repeating_it(predictor, raw_rows):
    encoder = ColumnEncoder(predictor.encoder)
    names = predictor.encoder.schema.columns(labels=False)
    rows = raw_rows[:5]
    shared = {"device": "ios", "hour": 7, "user_activity": None, "recent_categories": [3, 4, 4]}
    columns = {c: Same(shared[c]) if c in shared else [r[c] for r in rows] for c in names}
    repeated = {c: [shared[c]] * 5 if c in shared else [r[c] for r in rows] for c in names}
    assert_same_batch(encoder.encode(columns, 5), encoder.encode(repeated, 5))


def test_score_equals_predict(predictor, raw_rows, fresh_table):
    names = predictor.encoder.schema.columns(labels=False)
    got = predictor.score({c: [r[c] for r in raw_rows] for c in names}, len(raw_rows))
    want = predictor.predict(fresh_table)
    assert set(got) == {t.name for t in predictor.tasks}
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


@pytest.mark.parametrize("n", [1, 3])
def test_score_of_few_rows(predictor, raw_rows, n):
    names = predictor.encoder.schema.columns(labels=False)
    got = predictor.score({c: [r[c] for r in raw_rows[:n]] for c in names}, n)
    assert got["click"].shape == (n,) and got["user_segment"].shape == (n, 4)
    np.testing.assert_allclose(got["user_segment"].sum(1), 1.0, rtol=1e-6)


def _fitted(features, values: dict) -> Encoder:
    table = pa.table({**values, "click": [i % 2 for i in range(len(next(iter(values.values()))))]})
    return Encoder(Schema(tuple(features), (TaskSpec("click", "binary"),))).fit(table)


def test_vocabulary_entries_that_look_numeric_but_are_no_int_text():
    """"--5", "²" and "-0" are categories like any text (int("²") would raise); 7 finds "7"."""
    encoder = _fitted([FeatureSpec("tag", "categorical")], {"tag": ["a", "--5", "²", "7", "3.5", "-0"]})
    values = ["--5", "²", 7, "7", "-0", 0, "3.5", "zzz", None]
    got = ColumnEncoder(encoder).encode({"tag": values}, len(values)).cat[:, 0].tolist()
    where = {v: i + 1 for i, v in enumerate(encoder.vocabs_["tag"])}
    assert got == [0 if v is None else where.get(str(v), 0) for v in values]
    assert min(got[:5]) > 0 and got[5] == 0


@pytest.mark.parametrize("numeric_first", [True, False])
def test_a_column_read_as_a_number_and_as_a_category(numeric_first):
    """The request field is a number (text is a 422), and the category of a number is the one
    training gave it: 2.0 and 2 are "2", 3.5 is "3.5"."""
    features = [FeatureSpec("price", "numeric"), FeatureSpec("price_cat", "categorical", column="price")]
    encoder = _fitted(features if numeric_first else features[::-1], {"price": [3.5, 2.0, 1.25, 3.5, None, 7.0]})
    values = [3.5, 2.0, 2, 1.25, 9.9, None, 7]
    fast = ColumnEncoder(encoder).encode({"price": values}, len(values))
    floats = pa.array([None if v is None else float(v) for v in values], pa.float64())
    assert_same_batch(fast, encoder.transform(pa.table({"price": floats}), labels=False))
    assert (fast.cat[:4, 0] > 0).all() and fast.cat[4, 0] == 0
    models = request_models(encoder, Limits())
    models.score.model_validate({"rows": [{"price": 3.5}]})
    with pytest.raises(pydantic.ValidationError, match="price"):
        models.score.model_validate({"rows": [{"price": "abc"}]})


def test_a_column_read_as_a_sequence_and_another_kind_cannot_be_served():
    features = [FeatureSpec("tags", "sequence", max_len=3), FeatureSpec("tag", "categorical", column="tags")]
    encoder = _fitted(features, {"tags": ["a|b", "b", "c|a"]})
    with pytest.raises(RunError, match=r"column 'tags' is read by a sequence feature and another kind \(tags \(seq"):
        request_models(encoder, Limits())
