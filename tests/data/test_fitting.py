"""Fitting in one pass, batch by batch (EncoderFit), gives the encoder that fitting the whole table
at once gives: the same vocabularies and counts, numeric scaling and regression targets equal up to
float rounding."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.data.encode import Encoder
from mtlrec.data.fitting import EncoderFit, Moments
from mtlrec.data.synthetic import default_schema
from mtlrec.errors import DataError
from mtlrec.spec import FeatureSpec, Schema, TaskSpec


@pytest.mark.parametrize("sizes", [[6000], [1, 999, 0, 2500, 2500], [100] * 60])
def test_batch_by_batch_equals_the_whole_table(shop_table, sizes):
    schema = default_schema()
    whole = Encoder(schema).fit(shop_table)
    fit, start = EncoderFit(schema), 0
    for n in sizes:
        fit.update(shop_table.slice(start, n))
        start += n
    streamed = fit.finish()
    assert streamed.vocabs_ == whole.vocabs_ and streamed.counts_ == whole.counts_
    for name, stats in whole.numeric_.items():
        for key, value in stats.items():
            assert streamed.numeric_[name][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (name, key)
    for name, (mean, std) in whole.targets_.items():
        assert streamed.targets_[name] == pytest.approx((mean, std), rel=1e-12)
    a, b = whole.transform(shop_table), streamed.transform(shop_table)
    assert torch_equal(a.cat, b.cat) and torch_equal(a.seq, b.seq)
    np.testing.assert_allclose(a.dense.numpy(), b.dense.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("warm", [False, True])
def test_fits_of_parts_merged_in_order_equal_one_fit_of_all(shop_table, warm):
    """What several processes do with a stream's pass: each fits some pieces, every state (through
    JSON) merged in one order, an empty part and a warm start's counts included."""
    schema = default_schema()
    start = Encoder(schema).fit(shop_table.slice(0, 1000)) if warm else None
    parts = [shop_table.slice(0, 2500), shop_table.slice(2500, 0), shop_table.slice(2500, 3500)]
    whole = EncoderFit(schema, start=start)
    for part in parts:
        whole.update(part)
    merged = EncoderFit(schema, start=start)
    for part in parts:
        merged.merge(json.loads(json.dumps(EncoderFit(schema, start=start).update(part).state())))
    a, b = whole.finish(), merged.finish()
    assert b.vocabs_ == a.vocabs_ and b.counts_ == a.counts_ and b.classes_ == a.classes_
    assert merged.rows == whole.rows == len(shop_table)
    for name, stats in a.numeric_.items():
        assert b.numeric_[name] == pytest.approx(stats, rel=1e-12, abs=1e-12), name
    for name, target in a.targets_.items():
        assert b.targets_[name] == pytest.approx(target, rel=1e-12), name


def test_moments_merge_as_one_stream():
    rng = np.random.default_rng(1)
    parts = [rng.normal(2, 5, 50), np.array([]), np.array([4.0]), rng.normal(-3, 1, 7)]
    one, merged = Moments(), Moments()
    for p in parts:
        one.add(p)
        m = Moments()
        m.add(p)
        merged.merge(m)
    x = np.concatenate(parts)
    assert (merged.n, merged.low, merged.high) == (len(x), x.min(), x.max())
    assert merged.mean == pytest.approx(x.mean(), rel=1e-13) and merged.std == pytest.approx(x.std(), rel=1e-12)
    assert (merged.mean, merged.std) == pytest.approx((one.mean, one.std), rel=1e-13)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_moments_against_numpy_including_degenerate_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(5, 3, 17), np.array([]), np.full(4, 2.5), rng.normal(-1, 0.1, 1000), np.array([7.0])]
    m = Moments()
    for b in batches:
        m.add(b)
    x = np.concatenate(batches)
    assert m.n == len(x) and m.mean == pytest.approx(x.mean(), rel=1e-13)
    assert m.std == pytest.approx(x.std(), rel=1e-12) and (m.low, m.high) == (x.min(), x.max())
    flat = Moments()
    flat.add(np.full(10, 3.0))
    assert flat.std == 0.0 and flat.with_constant(3.0, 5).std == 0.0
    assert Moments().std == 0.0


def test_missing_values_fill_and_flag_as_in_fit():
    schema = Schema(
        features=(FeatureSpec("x", "numeric", transform="log1p"), FeatureSpec("y", "numeric", fill=-1.0,
                                                                            missing_indicator=True)),
        tasks=(TaskSpec("v", "regression", transform="log1p"), TaskSpec("n", "regression", loss="poisson")),
    )  # fmt: skip
    table = pa.table({"x": [1.0, None, 3.0, None, 10.0, 2.0], "y": [1.0, 2, 3, 4, 5, 6], "v": [0.0, 1, 2, 3, 4, 5],
                      "n": [0, 0, 2, 1, 0, 5]})  # fmt: skip
    whole = Encoder(schema).fit(table)
    fit = EncoderFit(schema)
    for a in range(0, 6, 4):
        fit.update(table.slice(a, 4))
    streamed = fit.finish()
    for name in ("x", "y"):
        assert streamed.numeric_[name] == pytest.approx(whole.numeric_[name], rel=1e-12)
    assert streamed.numeric_["x"]["indicator"] and streamed.numeric_["y"]["indicator"]
    assert streamed.targets_["v"] == pytest.approx(whole.targets_["v"], rel=1e-12)
    assert streamed.targets_["n"] == pytest.approx(whole.targets_["n"], rel=1e-12)
    assert whole.targets_["n"] == pytest.approx((0.0, 8 / 6), rel=1e-12)  # counts over their mean, not shifted
    with pytest.raises(DataError, match="feature 'x': column 'x' has no values in the train split"):
        EncoderFit(schema).update(pa.table({"x": pa.array([None, None], pa.float64()), "y": [1.0, 2.0],
                                            "v": [1.0, 2.0], "n": [1, 2]})).finish()  # fmt: skip
