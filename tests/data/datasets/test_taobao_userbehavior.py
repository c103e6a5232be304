"""taobao_userbehavior: (user, item) samples from raw events; labels per pair; history strictly
before the sample time (checked against a naive reference and on the shared data); seeded negative
sampling that never picks an interacted item; split by time; malformed lines."""

from __future__ import annotations

import numpy as np
import pytest

from mtlrec.config import load_config
from mtlrec.data.datasets.taobao_userbehavior import build_samples, read_events
from mtlrec.errors import DataError

EVENTS = [  # user, item, category, behaviour, time
    (1, 100, 7, "pv", 1000),
    (1, 101, 7, "pv", 1000),  # same second as item 100: not in 101's history
    (1, 100, 7, "cart", 1010),
    (1, 102, 8, "pv", 1020),
    (1, 100, 7, "buy", 1030),
    (1, 103, 8, "fav", 1040),  # a fav without a pv: click 0
    (2, 101, 7, "pv", 2000),
    (2, 104, 9, "pv", 2050),
    (2, 101, 7, "buy", 2100),
] + [(3, 105 + i, 10 + i % 3, "pv", 3000 + i) for i in range(20)]  # user 3 touched 20 of the 25 items
CATEGORY = {item: cat for _, item, cat, _, _ in EVENTS}


def write_events(path, events=EVENTS, extra: str = ""):
    path.write_text("\n".join(",".join(map(str, e)) for e in events) + "\n" + extra)
    return path


def naive_history(user, time, length):
    """The user's events strictly before ``time``, most recent first (ties: later line first)."""
    before = [(t, line, item, cat) for line, (u, item, cat, _, t) in enumerate(EVENTS) if u == user and t < time]
    before.sort(reverse=True)
    return [e[2] for e in before[:length]], [e[3] for e in before[:length]]


@pytest.fixture
def samples(tmp_path):
    return build_samples(read_events(write_events(tmp_path / "ev.csv")), negatives=2, history_length=3, seed=0)


def rows(table):
    return table.to_pylist()


def test_positive_pairs_their_labels_and_time(samples):
    pos = {(r["user_id"], r["item_id"]): r for r in rows(samples) if r["click"] or r["cart"] or r["fav"] or r["buy"]}
    labels = {k: (r["click"], r["cart"], r["fav"], r["buy"], r["time"]) for k, r in pos.items() if k[0] < 3}
    assert labels == {
        (1, 100): (1, 1, 0, 1, 1000),
        (1, 101): (1, 0, 0, 0, 1000),
        (1, 102): (1, 0, 0, 0, 1020),
        (1, 103): (0, 0, 1, 0, 1040),
        (2, 101): (1, 0, 0, 1, 2000),
        (2, 104): (1, 0, 0, 0, 2050),
    }
    assert len(pos) == 26  # 4 + 2 + 20 pairs


def test_history_matches_a_naive_reference(samples):
    for r in rows(samples):
        items, cats = naive_history(r["user_id"], r["time"], 3)
        assert r["hist_items"] == items and r["hist_categories"] == cats, r
        assert r["hist_category_matches"] == sum(c == r["category_id"] for c in cats)
        assert r["category_id"] == CATEGORY[r["item_id"]]


def test_negatives_are_seeded_untouched_and_capped(samples, tmp_path):
    touched = {(u, i) for u, i, *_ in EVENTS}
    neg = [r for r in rows(samples) if (r["user_id"], r["item_id"]) not in touched]
    assert all(r["click"] == r["cart"] == r["fav"] == r["buy"] == 0 for r in neg)
    by_user = {u: [r["item_id"] for r in neg if r["user_id"] == u] for u in (1, 2, 3)}
    # 2 per positive pair; user 3 touched 20 of the 25 items, so gets the 5 others
    assert {u: len(v) for u, v in by_user.items()} == {1: 8, 2: 4, 3: 5}
    assert sorted(by_user[3]) == [100, 101, 102, 103, 104]
    assert all(len(set(v)) == len(v) for v in by_user.values())  # no item twice for one user
    span = {1: (1000, 1040), 2: (2000, 2100), 3: (3000, 3019)}
    assert all(span[r["user_id"]][0] <= r["time"] <= span[r["user_id"]][1] for r in neg)
    events = read_events(tmp_path / "ev.csv")
    again = build_samples(events, negatives=2, history_length=3, seed=0)
    other = build_samples(events, negatives=2, history_length=3, seed=1)
    assert again.equals(samples) and not other.equals(samples)


def test_split_by_time_and_options(tmp_path, load):
    path = write_events(tmp_path / "ev.csv")
    src = load("taobao_userbehavior", path, taobao_userbehavior={"negatives": 1}, split={"valid": 0.2, "test": 0.2})
    s = src.splits
    assert sum(t.num_rows for t in s.values()) == src.table.num_rows == 26 + 4 + 2 + 5
    assert max(s["train"]["time"].to_pylist()) <= min(s["valid"]["time"].to_pylist())
    assert max(s["valid"]["time"].to_pylist()) <= min(s["test"]["time"].to_pylist())
    assert load("taobao_userbehavior", path, taobao_userbehavior={"split_by_time": False}).splits is None


@pytest.mark.parametrize(
    "extra, message",
    [
        ("4,200,7,pv\n", r"ev.csv line 30: expected 5 fields separated by ',', got 4"),
        ("4,200,7,pv,soon\n", r"ev.csv line 30: column 'timestamp': expected an integer, got 'soon'"),
        ("4,x200,7,pv,5\n", r"ev.csv line 30: column 'item_id': expected an integer, got 'x200'"),
        ("4,200,7,click,5\n", r"ev.csv line 30: column 'behavior_type': expected one of pv, cart, fav, buy, got 'click'"),
    ],
)
def test_malformed_lines(tmp_path, load, extra, message):
    with pytest.raises(DataError, match=message):
        load("taobao_userbehavior", write_events(tmp_path / "ev.csv", extra=extra))


@pytest.fixture(scope="module")
def shared_samples(shared):
    events = read_events(shared("taobao-userbehavior/UserBehavior_head84k.csv.gz"))
    return events, build_samples(events, negatives=4, history_length=20, seed=0)


def test_shared_pairs_match_the_readme(shared_samples):
    events, table = shared_samples
    n_pairs = len(np.unique(events.user * 10**8 + events.item))
    assert n_pairs == 63_988 and table.num_rows == 5 * n_pairs  # 4 negatives each, no user capped
    pos = table.slice(0, n_pairs)  # positives first
    rates = {t: round(float(np.mean(pos[t])), 3) for t in ("click", "cart", "fav", "buy")}
    assert rates == {"click": 0.936, "cart": 0.068, "fav": 0.037, "buy": 0.026}  # README: 93.6/6.8/3.7/2.6 %


def test_shared_history_holds_only_earlier_events(shared_samples):
    """No leakage: each history item was touched by the user before the sample time, and the
    history is as long as the number of the user's earlier events allows."""
    events, table = shared_samples
    key = events.user * 10**8 + events.item
    pair, first_at = np.unique(key, return_index=True)  # events are sorted by (user, time)
    pair_first_time = events.time[first_at]
    hist = table["hist_items"].combine_chunks()
    lengths = np.diff(np.asarray(hist.offsets))
    user = np.asarray(table["user_id"])
    time = np.asarray(table["time"])
    h_key = np.repeat(user, lengths) * 10**8 + np.asarray(hist.flatten())
    at = np.searchsorted(pair, h_key)
    assert (pair[at] == h_key).all()  # the user touched every history item
    assert (pair_first_time[at] < np.repeat(time, lengths)).all()  # strictly before the sample time
    ev_key = events.user * 10**10 + events.time  # sorted
    earlier = np.searchsorted(ev_key, user * 10**10 + time) - np.searchsorted(ev_key, user * 10**10)
    np.testing.assert_array_equal(lengths, np.minimum(earlier, 20))


def test_shared_negatives_never_interacted(shared_samples):
    events, table = shared_samples
    touched = np.unique(events.user * 10**8 + events.item)
    n_pairs = len(touched)
    neg = table.slice(n_pairs)
    neg_key = np.asarray(neg["user_id"]) * 10**8 + np.asarray(neg["item_id"])
    assert not np.isin(neg_key, touched).any()
    assert len(np.unique(neg_key)) == len(neg_key)


def test_taobao_config_trains_end_to_end(tmp_path):
    from mtlrec.experiment import run_experiment

    path = write_events(tmp_path / "ev.csv")
    cfg = load_config("configs/taobao.yaml", [f"data.path={path}", "train.epochs=1", "train.progress=false"])
    metrics = run_experiment(cfg, tmp_path / "run")
    assert {"click", "cart", "fav", "buy"} <= set(metrics["test"])
