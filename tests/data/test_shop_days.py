"""A shop that changes (simulate_days): reproducible, one persistent world whose catalogue turns over
with fresh ids, timestamps inside each day, simulate()'s columns every day, a stationary shop at
drift 0 and a feature->label mapping that moves with drift (enough to hurt a model fitted on day 1),
argument errors, and `mtlrec simulate --days`."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from mtlrec.cli.main import main
from mtlrec.data.readers import read_table
from mtlrec.data.shop_days import CHURN, DRIFT, simulate_days
from mtlrec.data.synthetic import (
    B_CLICK, DEVICE_CLICK, DEVICES, ORACLE_PREFIX, START_TS, W_HOUR, W_POSITION, default_schema, simulate,
)  # fmt: skip

WORLD = {"users": 3_000, "items": 1_500, "brands": 200}
DAYS, ROWS = 7, 20_000


def days_of(**kwargs) -> list:
    return list(simulate_days(**{"days": DAYS, "rows": ROWS, "seed": 5, **WORLD, **kwargs}))


@pytest.fixture(scope="module")
def drifting() -> list:
    return days_of()


@pytest.fixture(scope="module")
def still() -> list:
    """Same seed, no drift: the same users, catalogue and turnover."""
    return days_of(drift=0.0)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def fixed(table: pa.Table, name: str) -> np.ndarray:
    values = table[name].combine_chunks()
    return values.flatten().to_numpy().reshape(len(values), -1)


def click_relevance(table: pa.Table) -> np.ndarray:
    """The oracle click logit without its position, device and hour terms: what the user and the item
    alone make of the impression."""
    p = col(table, ORACLE_PREFIX + "click")
    device = pc.index_in(table["device"], value_set=pa.array(DEVICES)).to_numpy()
    context = (
        B_CLICK
        - W_POSITION * np.log1p(col(table, "position"))
        + np.asarray(DEVICE_CLICK)[device]
        + W_HOUR * np.cos(2 * np.pi * (col(table, "hour") - 20) / 24)
    )
    return np.log(p) - np.log1p(-p) - context


def pair_change(first: pa.Table, later: pa.Table) -> np.ndarray:
    """|change| of the click relevance of the (user, item) pairs shown on both days."""
    a, b = (col(t, "user_id") * 10**7 + col(t, "item_id") for t in (first, later))
    both, ia, ib = np.intersect1d(a, b, return_indices=True)
    assert both.size > 100  # enough pairs to say something
    return np.abs(click_relevance(later)[ib] - click_relevance(first)[ia])


def test_same_seed_same_days_other_seed_differs_and_day_k_does_not_depend_on_days():
    small = {"rows": 2_000, "users": 300, "items": 200, "brands": 20}
    a = [d.table for d in simulate_days(days=3, seed=1, **small)]
    b = [d.table for d in simulate_days(days=3, seed=1, **small)]
    assert all(x.equals(y) for x, y in zip(a, b))
    assert not a[2].equals(next(iter(simulate_days(days=3, seed=2, **small))).table)
    assert all(x.equals(y.table) for x, y in zip(a, simulate_days(days=2, seed=1, **small)))


def test_every_day_has_simulates_columns_and_the_default_schema_applies(drifting):
    reference = simulate(rows=1_000, seed=0).schema
    schema = default_schema()
    wanted = {schema.group} | {f.source for f in schema.features} | {t.source for t in schema.tasks}
    wanted |= {ORACLE_PREFIX + t.name for t in schema.tasks}
    for day in drifting:
        assert day.table.schema.equals(reference), day.day
        assert wanted <= set(day.table.column_names)
        assert day.table.num_rows == ROWS
        for name in ("click", "add_to_cart", "purchase"):
            p = col(day.table, ORACLE_PREFIX + name)
            assert np.all((p > 0) & (p < 1)), (day.day, name)


def test_timestamps_inside_each_day_and_request_ids_continue(drifting):
    last_request = -1
    for day in drifting:
        ts = col(day.table, "ts")
        start = START_TS + (day.day - 1) * 86_400
        assert ts.min() >= start and ts.max() < start + 86_400, day.day
        assert np.all(np.diff(ts) >= 0)
        np.testing.assert_array_equal(col(day.table, "hour"), ts % 86_400 // 3_600)
        request = col(day.table, "request_id")
        assert request.min() == last_request + 1 and np.all(np.diff(request) >= 0)
        last_request = request.max()


def test_new_items_arrive_with_fresh_ids_and_new_brands_launch(drifting):
    assert drifting[0].new_items == drifting[0].left_items == drifting[0].new_brands == 0
    next_id, shown_new = WORLD["items"], 0
    for day in drifting[1:]:
        assert day.new_items > 0 and day.left_items > 0, day.day
        assert day.items_on_sale == WORLD["items"]  # as many arrive as leave
        ids = col(day.table, "item_id")
        fresh = ids[ids >= next_id]  # ids never used before today: all in today's new range
        assert fresh.size == 0 or fresh.max() < next_id + day.new_items, day.day
        shown_new += np.unique(fresh).size
        next_id += day.new_items
    assert shown_new > 0.8 * sum(d.new_items for d in drifting)  # most new items are shown on arrival
    assert 1 <= sum(d.new_brands for d in drifting) <= 20  # occasionally: ~1 a day here
    brands_shown = np.unique(np.concatenate([col(d.table, "brand") for d in drifting]))
    assert brands_shown.max() >= WORLD["brands"]  # a new brand's items are shown


def test_items_that_leave_are_not_shown_any_more():
    days = list(simulate_days(days=2, rows=5_000, users=500, items=400, churn=1.0, seed=3))
    assert days[1].left_items >= 400 - 20  # every item leaves but each category's last
    old = col(days[1].table, "item_id") < 400
    assert np.unique(col(days[1].table, "item_id")[old]).size <= 20


def test_without_drift_or_churn_every_day_is_the_same_world():
    days = list(simulate_days(days=4, rows=ROWS, drift=0.0, churn=0.0, seed=5, **WORLD))
    assert all(d.new_items == d.left_items == d.new_brands == 0 for d in days)
    first, last = days[0].table, days[-1].table
    assert pair_change(first, last).max() < 1e-9  # the same (user, item) gets the same click probability
    _, ia, ib = np.intersect1d(col(first, "user_id"), col(last, "user_id"), return_indices=True)
    interests = ORACLE_PREFIX + "interests"
    np.testing.assert_array_equal(fixed(first, interests)[ia], fixed(last, interests)[ib])
    assert not first.equals(last)  # only the sampling differs


def test_drift_zero_is_stationary_and_drift_moves_the_mapping(still, drifting):
    assert [d.new_items for d in still] == [d.new_items for d in drifting]  # same seed: same turnover
    assert still[0].table.equals(drifting[0].table)  # drift starts after day 1
    assert pair_change(still[0].table, still[-1].table).max() < 1e-9  # items on sale keep their odds
    moved = pair_change(drifting[0].table, drifting[-1].table)
    assert np.median(moved) > 0.05 and np.mean(moved > 1e-6) > 0.95
    # recorded profiles stay, latent interests move: the same user's interest labels change only with drift
    for days, drifts in ((still, False), (drifting, True)):
        a, b = days[0].table, days[-1].table
        _, ia, ib = np.intersect1d(col(a, "user_id"), col(b, "user_id"), return_indices=True)
        for name in ("user_price_pref", "user_activity"):
            np.testing.assert_array_equal(col(a, name)[ia], col(b, name)[ib])
        np.testing.assert_array_equal(fixed(a, "recent_categories")[ia], fixed(b, "recent_categories")[ib])
        before, after = fixed(a, ORACLE_PREFIX + "interests")[ia], fixed(b, ORACLE_PREFIX + "interests")[ib]
        assert np.any(before != after) == drifts
        # either way the population looks the same: Dirichlet interests, the same label rates
        assert abs(after.sum(1).mean() / before.sum(1).mean() - 1) < 0.05
        click_a, click_b = col(a, ORACLE_PREFIX + "click").mean(), col(b, ORACLE_PREFIX + "click").mean()
        assert abs(click_b / click_a - 1) < 0.15


def features(table: pa.Table, encoder: OneHotEncoder | None = None):
    names = ("category", "brand", "position", "hour", "device")
    categorical = np.column_stack([col(table, name) for name in names])
    encoder = encoder or OneHotEncoder(handle_unknown="ignore").fit(categorical)
    log_price, log_pref = np.log(col(table, "price")), np.log(col(table, "user_price_pref"))
    numeric = np.column_stack([
        log_price, log_pref, log_price * log_pref, np.nan_to_num(col(table, "item_rating"), nan=3.7),
        np.log1p(col(table, "user_activity")), np.sqrt(col(table, "user_cat_clicks") / 200),
    ])  # fmt: skip
    return sparse.hstack([encoder.transform(categorical), sparse.csr_matrix(numeric)]).tocsr(), encoder


def frozen_gaps(days: list) -> list[float]:
    """Oracle click AUC minus the AUC of a logistic regression fitted on day 1, on each later day."""
    x, encoder = features(days[0].table)
    model = LogisticRegression(max_iter=1_000).fit(x, col(days[0].table, "click"))
    gaps = []
    for day in days[1:]:
        y = col(day.table, "click")
        score = model.predict_proba(features(day.table, encoder)[0])[:, 1]
        gaps.append(roc_auc_score(y, col(day.table, ORACLE_PREFIX + "click")) - roc_auc_score(y, score))
    return gaps


def test_a_model_fitted_on_day_one_falls_behind_the_oracle_only_with_drift(still, drifting):
    still_gaps, drift_gaps = frozen_gaps(still), frozen_gaps(drifting)
    assert max(still_gaps) - min(still_gaps) < 0.01  # stationary: as good on day 7 as on day 2
    assert drift_gaps[-1] - drift_gaps[0] > 0.01  # measured ~0.02 by day 7 at the default drift
    assert drift_gaps[-1] > still_gaps[-1] + 0.01


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"days": 0}, "days"),
        ({"days": 2.5}, "days"),
        ({"days": True}, "days"),
        ({"drift": -0.1}, "drift"),
        ({"drift": float("nan")}, "drift"),
        ({"drift": 11.0}, "drift"),
        ({"drift": "fast"}, "drift"),
        ({"churn": -0.01}, "churn"),
        ({"churn": 1.5}, "churn"),
        ({"rows": 0}, "rows"),
        ({"rows": 5, "page_size": 10}, "rows"),
        ({"items": 5, "categories": 20}, "items"),
        ({"correlation": 2.0}, "correlation"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_invalid_arguments_fail_at_the_call_and_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"simulate_days: {name}"):
        simulate_days(**kwargs)  # not iterated: checked at the call


def test_extreme_knobs_stay_valid():
    for drift, churn in ((10.0, 1.0), (DRIFT, 0.0)):
        for day in simulate_days(days=3, rows=1_000, users=200, items=40, categories=5, brands=3,
                                 drift=drift, churn=churn, seed=0):  # fmt: skip
            for name in ("click", "add_to_cart", "purchase"):
                p = col(day.table, ORACLE_PREFIX + name)
                assert np.all((p > 0) & (p < 1)), (drift, churn, day.day, name)
            assert set(np.unique(col(day.table, "category"))) <= set(range(5))


def cli(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_one_parquet_file_per_day(capsys, tmp_path):
    out = tmp_path / "shop"
    args = {"rows": 2_000, "users": 300, "items": 200, "drift": 0.2, "churn": 0.05, "seed": 4}
    code, stdout, err = cli(capsys, "simulate", "--days", 3, "--out", out,
                            *[f"--{k}={v}" for k, v in args.items()])  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["day-01.parquet", "day-02.parquet", "day-03.parquet"]
    days = list(simulate_days(days=3, **args))
    for day in days:
        assert read_table(out / f"day-{day.day:02d}.parquet").equals(day.table)
    lines = stdout.splitlines()
    assert len(lines) == 4 and "day-02.parquet: 2,000 impressions" in lines[1]
    assert f"+{days[1].new_items} new" in lines[1] and f"+{days[1].new_brands} brands" in lines[1]
    assert "wrote 3 days (6,000 impressions" in lines[-1]


def test_cli_without_days_writes_one_file_as_before(capsys, tmp_path):
    code, out, err = cli(capsys, "simulate", "--rows", 1_000, "--users", 300, "--items", 200, "--seed", 2,
                         "--out", tmp_path / "x.parquet")  # fmt: skip
    assert code == 0, err
    assert out == f"wrote 1,000 impressions to {tmp_path / 'x.parquet'}\n"
    assert read_table(tmp_path / "x.parquet").equals(simulate(rows=1_000, users=300, items=200, seed=2))


def test_cli_help_names_the_library_defaults(capsys):
    code, out, _ = cli(capsys, "simulate", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    assert f"default {DRIFT:g})" in text and f"default {CHURN:g})" in text


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--days", 0], "--days"),
        (["--days", 2, "--drift", -1], "--drift"),
        (["--days", 2, "--drift", "nan"], "--drift"),
        (["--days", 2, "--churn", 1.5], "--churn"),
        (["--drift", 0.1], "--drift applies only with --days"),
        (["--churn", 0.1], "--churn applies only with --days"),
        (["--days", 2, "--rows", 5], "rows"),
        (["--rows", 0], "rows"),
        (["--days", 2, "--seed", -1], "seed"),
    ],
)
def test_cli_rejects_bad_options_in_one_line(capsys, tmp_path, args, needle):
    code, _, err = cli(capsys, "simulate", "--out", tmp_path / "out", *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


def test_cli_days_wants_a_directory(capsys, tmp_path):
    existing = tmp_path / "day.parquet"
    existing.write_bytes(b"x")
    for out in (existing, tmp_path / "new.csv"):
        code, _, err = cli(capsys, "simulate", "--days", 2, "--rows", 100, "--out", out)
        assert code == 2 and "directory" in err and err.count("\n") == 1, err
    assert existing.read_bytes() == b"x" and not (tmp_path / "new.csv").exists()


def test_each_days_catalogue_is_the_items_on_sale_as_their_impressions_show_them(drifting):
    """The catalogue (what the sales table lists per day) holds every item shown that day, with the
    category, brand, price and rating of its impressions, and nothing that left the shop."""
    for day in drifting:
        cat = day.catalogue
        assert cat.num_rows == day.items_on_sale == len(set(cat["item_id"].to_pylist()))
        index = {i: k for k, i in enumerate(cat["item_id"].to_pylist())}
        shown = col(day.table, "item_id")
        assert set(shown) <= set(index)
        rows = np.array([index[i] for i in shown])
        for name in ("category", "brand", "price"):
            np.testing.assert_array_equal(col(cat, name)[rows], col(day.table, name), err_msg=name)
        np.testing.assert_array_equal(col(cat, "item_rating")[rows], col(day.table, "item_rating"))  # NaN = NaN
    gone = set(drifting[0].catalogue["item_id"].to_pylist()) - set(drifting[-1].catalogue["item_id"].to_pylist())
    assert gone and not gone & set(col(drifting[-1].table, "item_id"))
