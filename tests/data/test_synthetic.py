"""The shop simulator: reproducible, a consistent funnel, valid ground truth that matches the labels,
page structure, the correlation knob, argument errors and its default schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mtlrec.data.synthetic import DEVICES, ORACLE_PREFIX, SEGMENTS, default_schema, simulate

ROWS, PAGE = 40_005, 10  # not a multiple of the page size: the last request is cut short


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return simulate(rows=ROWS, page_size=PAGE, seed=7)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy()


def fixed(table: pa.Table, name: str) -> np.ndarray:
    """A list column whose lists all have the same length, as [N, K]."""
    values = table[name].combine_chunks()
    return values.flatten().to_numpy().reshape(len(values), -1)


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC (the scores here are continuous: no ties)."""
    rank = np.empty(len(score))
    rank[np.argsort(score)] = np.arange(1, len(score) + 1)
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((rank[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def assert_rate_matches(labels: np.ndarray, probs: np.ndarray, what: str) -> None:
    """Bernoulli(probs) labels: their sum lies within 4 standard deviations of the expected sum."""
    sd = np.sqrt(np.sum(probs * (1 - probs)))
    assert abs(labels.sum() - probs.sum()) < 4 * sd, f"{what}: {labels.mean():.4f} vs {probs.mean():.4f}"


def first_row_per_user(table: pa.Table) -> np.ndarray:
    return np.unique(col(table, "user_id"), return_index=True)[1]


def test_same_seed_same_table_and_other_seed_differs():
    a = simulate(rows=3_000, users=500, items=300, seed=1)
    assert a.equals(simulate(rows=3_000, users=500, items=300, seed=1))
    assert not a.equals(simulate(rows=3_000, users=500, items=300, seed=2))


def test_column_types(table):
    types = dict(zip(table.column_names, table.schema.types))
    ints = ("request_id", "ts", "user_id", "item_id", "position", "hour", "category", "brand", "user_segment")
    floats = ("price", "item_rating", "user_price_pref", "user_activity", "user_cat_clicks", "order_value")
    for name in ints:
        assert types[name] == pa.int64(), name
    for name in floats:
        assert types[name] == pa.float64(), name
    for name in ("click", "add_to_cart", "purchase"):
        assert types[name] == pa.int8(), name
    assert types["device"] == pa.string()
    assert types["recent_categories"] == types["interests"] == pa.list_(pa.int32())
    assert types[ORACLE_PREFIX + "user_segment"] == pa.list_(pa.float32(), len(SEGMENTS))
    assert types[ORACLE_PREFIX + "interests"] == pa.list_(pa.float32(), 20)
    for name in ("click", "add_to_cart", "purchase", "order_value"):
        assert types[ORACLE_PREFIX + name] == pa.float64(), name


def test_value_ranges(table):
    assert set(table["device"].to_pylist()) == set(DEVICES)
    assert set(np.unique(col(table, "hour"))) == set(range(24))
    assert col(table, "price").min() > 0
    assert col(table, "category").min() >= 0 and col(table, "category").max() < 20
    assert col(table, "user_id").max() < 20_000 and col(table, "item_id").max() < 10_000
    rating = col(table, "item_rating")
    missing = np.isnan(rating)
    assert table["item_rating"].null_count == missing.sum()  # missing is null, not NaN
    assert 0.005 < missing.mean() < 0.05  # ~2 % of items have no rating
    assert rating[~missing].min() >= 1 and rating[~missing].max() <= 5
    recent = fixed(table, "recent_categories")
    assert recent.shape == (ROWS, 10) and recent.min() >= 0 and recent.max() < 20
    assert set(np.unique(col(table, "user_segment"))) == set(range(len(SEGMENTS)))


def test_funnel_holds(table):
    click, cart, buy = col(table, "click"), col(table, "add_to_cart"), col(table, "purchase")
    value = col(table, "order_value")
    assert set(np.unique(click)) == set(np.unique(cart)) == set(np.unique(buy)) == {0, 1}
    assert not np.any((cart == 1) & (click == 0))
    assert not np.any((buy == 1) & (click == 0))
    np.testing.assert_array_equal(value > 0, buy == 1)
    price = col(table, "price")
    quantity = value[buy == 1] / price[buy == 1]
    np.testing.assert_allclose(quantity, np.round(quantity))  # order_value = price * whole quantity >= 1
    assert quantity.min() >= 1 and quantity.max() > 1


def test_oracle_columns_are_valid_probabilities(table):
    for name in ("click", "add_to_cart", "purchase"):
        p = col(table, ORACLE_PREFIX + name)
        assert np.all((p > 0) & (p < 1)), name
    assert np.all(col(table, ORACLE_PREFIX + "order_value") >= col(table, "price"))
    segment = fixed(table, ORACLE_PREFIX + "user_segment")
    assert np.all((segment >= 0) & (segment <= 1))
    np.testing.assert_allclose(segment.sum(axis=1), 1.0, atol=1e-6)
    interests = fixed(table, ORACLE_PREFIX + "interests")
    assert interests.shape == (ROWS, 20) and np.all((interests >= 0) & (interests <= 1))


def test_label_rates_match_the_oracle(table):
    click = col(table, "click") == 1
    assert_rate_matches(click, col(table, ORACLE_PREFIX + "click"), "click")
    for name in ("add_to_cart", "purchase"):  # given a click
        assert_rate_matches(col(table, name)[click], col(table, ORACLE_PREFIX + name)[click], name)
    # order value | purchase: price * (1 + Poisson(rate)), mean price * (1 + rate), variance price^2 * rate
    buy = col(table, "purchase") == 1
    price, mean = col(table, "price")[buy], col(table, ORACLE_PREFIX + "order_value")[buy]
    sd = np.sqrt(np.sum(price * (mean - price)))
    assert abs(col(table, "order_value")[buy].sum() - mean.sum()) < 4 * sd
    # profiling labels, once per user
    first = first_row_per_user(table)
    probs = fixed(table, ORACLE_PREFIX + "user_segment")[first]
    label = col(table, "user_segment")[first]
    assert_rate_matches(probs.argmax(1) == label, probs.max(1).astype(np.float64), "user_segment")
    inclusion = fixed(table, ORACLE_PREFIX + "interests")[first].astype(np.float64)
    interests = table["interests"].combine_chunks().take(pa.array(first))
    chosen = np.zeros_like(inclusion, dtype=bool)
    owner = np.repeat(np.arange(len(first)), interests.value_lengths().to_numpy())
    chosen[owner, interests.flatten().to_numpy()] = True
    assert_rate_matches(chosen, inclusion, "interests")


def test_default_rates_and_oracle_aucs_are_realistic(table):
    click = col(table, "click") == 1
    assert 0.10 < click.mean() < 0.22
    assert 0.12 < col(table, "add_to_cart")[click].mean() < 0.30
    assert 0.12 < col(table, "purchase")[click].mean() < 0.30
    assert 0.72 < auc(click, col(table, ORACLE_PREFIX + "click")) < 0.82
    buy = col(table, "purchase")[click]
    assert 0.70 < auc(buy, col(table, ORACLE_PREFIX + "purchase")[click]) < 0.85


def test_observed_features_carry_the_latent_state(table):
    click = col(table, "click")
    assert auc(click, col(table, "user_cat_clicks") + 1e-6 * np.arange(ROWS)) > 0.6
    rating = col(table, "item_rating")
    rated = ~np.isnan(rating)
    assert np.corrcoef(rating[rated], logit(col(table, ORACLE_PREFIX + "click"))[rated])[0, 1] > 0.1


def test_rows_and_pages(table):
    assert table.num_rows == ROWS
    request = col(table, "request_id")
    n_requests = -(-ROWS // PAGE)
    np.testing.assert_array_equal(request, np.repeat(np.arange(n_requests), PAGE)[:ROWS])
    full = ROWS // PAGE * PAGE  # the last, short request shows positions 0..4
    positions = col(table, "position")
    pages = positions[:full].reshape(-1, PAGE)
    np.testing.assert_array_equal(pages, np.broadcast_to(np.arange(PAGE), pages.shape))
    np.testing.assert_array_equal(positions[full:], np.arange(ROWS - full))
    for name in ("user_id", "ts", "hour"):  # one user, one time per request
        values = col(table, name)
        starts = np.flatnonzero(np.diff(request)) + 1
        assert np.all(values == np.repeat(values[np.r_[0, starts]], np.diff(np.r_[0, starts, ROWS]))), name
    ts = col(table, "ts")
    assert np.all(np.diff(ts) >= 0)
    assert ts.max() - ts.min() <= 30 * 86_400
    np.testing.assert_array_equal(col(table, "hour"), ts % 86_400 // 3_600)  # UTC hour of ts


def test_user_level_columns_are_constant_per_user(table):
    user = col(table, "user_id")
    first, back = np.unique(user, return_index=True, return_inverse=True)[1:]
    for name in ("user_price_pref", "user_activity"):
        values = col(table, name)
        np.testing.assert_array_equal(values, values[first][back], err_msg=name)
    for name in ("recent_categories", ORACLE_PREFIX + "user_segment", ORACLE_PREFIX + "interests"):
        values = fixed(table, name)
        np.testing.assert_array_equal(values, values[first][back], err_msg=name)


def test_profile_labels_are_drawn_per_row_from_the_oracle(table):
    """Per-row draws: memorising a user's labels cannot beat the oracle."""
    segment = col(table, "user_segment")
    probs = fixed(table, ORACLE_PREFIX + "user_segment")
    user = col(table, "user_id")
    first, back = np.unique(user, return_index=True, return_inverse=True)[1:]
    assert np.any(segment != segment[first][back])  # labels vary within a user
    agree = probs[np.arange(len(segment)), segment].mean()  # E[p(observed class)]
    expected = (probs**2).sum(1).mean()
    assert abs(agree - expected) < 0.02
    interests = table["interests"].combine_chunks()
    lengths = np.asarray(pc.list_value_length(interests))
    inclusion = fixed(table, ORACLE_PREFIX + "interests").sum(1)
    n = len(lengths)
    assert abs(lengths.mean() - inclusion.mean()) < 4 * np.sqrt(inclusion.mean() / n) + 0.01


def test_correlation_knob_ties_purchase_to_click():
    def logit_corr(correlation: float) -> float:
        t = simulate(rows=20_000, correlation=correlation, seed=3)
        click, purchase = col(t, ORACLE_PREFIX + "click"), col(t, ORACLE_PREFIX + "purchase")
        return np.corrcoef(logit(click), logit(purchase))[0, 1]

    low, high = logit_corr(0.0), logit_corr(1.0)
    assert high > 0.7 and high > low + 0.2
    # the knob changes only the post-click probabilities, never the world or the clicks
    a, b = simulate(rows=5_000, correlation=0.0, seed=3), simulate(rows=5_000, correlation=1.0, seed=3)
    assert a["oracle_click"].equals(b["oracle_click"]) and a["item_id"].equals(b["item_id"])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"rows": 0}, "rows"),
        ({"rows": 5, "page_size": 10}, "rows"),
        ({"rows": 2.5}, "rows"),
        ({"users": 0}, "users"),
        ({"items": 0}, "items"),
        ({"items": 5, "categories": 20}, "items"),
        ({"categories": 0}, "categories"),
        ({"brands": -1}, "brands"),
        ({"page_size": 0}, "page_size"),
        ({"correlation": 1.5}, "correlation"),
        ({"correlation": -0.1}, "correlation"),
        ({"correlation": float("nan")}, "correlation"),
        ({"correlation": "high"}, "correlation"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        simulate(**kwargs)


def test_small_and_large_worlds():
    tiny = simulate(rows=10, users=1, items=1, categories=1, brands=1, page_size=10)
    assert tiny.num_rows == 10 and set(col(tiny, "user_id")) == {0}
    # a million users cost nothing when only a few of them show up
    big = simulate(rows=2_000, users=1_000_000, items=50_000, page_size=1)
    assert big.num_rows == 2_000 and col(big, "user_id").max() < 1_000_000
    assert np.all(col(big, "position") == 0)


def test_default_schema_names_existing_columns(table):
    schema = default_schema()
    columns = set(table.column_names)
    assert schema.group in columns
    assert {f.source for f in schema.features} <= columns
    assert {t.source for t in schema.tasks} | {t.where for t in schema.tasks if t.where} <= columns
    assert {ORACLE_PREFIX + t.name for t in schema.tasks} <= columns
    assert schema.task("interests").n_classes == 20
    assert schema.task("user_segment").n_classes == len(SEGMENTS)
    assert [t.weight for t in schema.tasks] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    small = simulate(rows=1_000, categories=7, seed=1)
    assert default_schema(7).task("interests").n_classes == 7
    assert fixed(small, ORACLE_PREFIX + "interests").shape[1] == 7
    with pytest.raises(ValueError, match="categories"):
        default_schema(1)
