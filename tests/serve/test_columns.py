"""The request-side encoder gives exactly what Encoder.transform gives from an arrow table of the
same values (unseen, missing, text and integer categories, truncated sequences), and Predictor.score
equals Predictor.predict."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from mtlrec.serve.columns import ColumnEncoder, Same


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
