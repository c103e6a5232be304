"""Taobao UserBehavior (Tianchi 649): raw ``user_id,item_id,category_id,behavior_type,timestamp``
events (no header; behaviour pv, cart, fav or buy; unix seconds) turned into (user, item) samples.

- One positive sample per (user, item) pair that has any event; its sample time is the pair's first
  event. Labels: ``click`` (any pv), ``cart``, ``fav``, ``buy`` (any such event of the pair).
- ``negatives`` x (the user's positive pairs) negative samples per user: items drawn uniformly (seeded)
  from the log's items that the user never touched, at a time drawn uniformly from the user's first
  to last event; every label 0.
- History features from the user's events strictly before the sample time (no leakage): the last
  ``history`` items and categories, most recent first.
- ``split_by_time`` (default): the last ``data.split.test`` fraction of samples by time is test, the
  ``data.split.valid`` fraction before it valid; otherwise ``data.split`` applies.

The default schema: user, item, category, the two histories and how many history events share the
sample's category; cart, fav and buy are post-click tasks (``where: click``); GAUC groups by user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from mtlrec.config import DataConfig, SplitConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.datasets._files import integers, read_delimited
from mtlrec.data.sources import SOURCES, DataSource, Source, require_path
from mtlrec.data.split import split_table
from mtlrec.errors import ConfigError
from mtlrec.spec import FeatureSpec, Schema, TaskSpec

COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
BEHAVIORS = ("pv", "cart", "fav", "buy")
TASKS = {"click": "pv", "cart": "cart", "fav": "fav", "buy": "buy"}  # task -> behaviour


@dataclass(frozen=True)
class Events:
    """The event log as arrays (``behavior`` indexes BEHAVIORS); build_samples needs them sorted."""

    user: np.ndarray
    item: np.ndarray
    category: np.ndarray
    behavior: np.ndarray
    time: np.ndarray

    def sorted(self) -> "Events":
        order = np.lexsort((self.time, self.user))  # stable: ties keep the file's order
        return Events(*(getattr(self, f)[order] for f in ("user", "item", "category", "behavior", "time")))


def read_events(path: Path) -> Events:
    """The event file, sorted by (user, time)."""
    raw, file = read_delimited(path, names=list(COLUMNS))
    ints = {c: integers(raw, c, file) for c in ("user_id", "item_id", "category_id", "timestamp")}
    text = pc.utf8_trim_whitespace(raw["behavior_type"])
    code = np.asarray(pc.index_in(text, value_set=pa.array(BEHAVIORS)).fill_null(-1))
    if (code < 0).any():
        row = int(np.flatnonzero(code < 0)[0])
        got = text[row].as_py()
        raise file.error(row, f"column 'behavior_type': expected one of {', '.join(BEHAVIORS)}, got {got!r}")
    events = Events(ints["user_id"], ints["item_id"], ints["category_id"], code.astype(np.int8), ints["timestamp"])
    return events.sorted()


def _in_sorted(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    at = np.searchsorted(sorted_set, keys)
    return (at < len(sorted_set)) & (sorted_set[np.minimum(at, len(sorted_set) - 1)] == keys)


def sample_negatives(
    touched: np.ndarray, want: np.ndarray, n_items: int, rng: np.random.Generator, rounds: int = 50
) -> np.ndarray:
    """For each slot (a user index in ``want``) an item index in [0, n_items) that the user never
    touched (``touched``: sorted user * n_items + item keys) and no other slot of that user holds.
    Rejection sampling, then exact draws for users that touched nearly every item."""
    chosen = np.full(len(want), -1, dtype=np.int64)
    pending = np.arange(len(want))
    used = touched
    for _ in range(rounds):
        if not len(pending):
            break
        cand = rng.integers(0, n_items, len(pending))
        key = want[pending] * n_items + cand
        first = np.zeros(len(key), dtype=bool)
        first[np.unique(key, return_index=True)[1]] = True
        ok = first & ~_in_sorted(key, used)
        chosen[pending[ok]] = cand[ok]
        used = np.union1d(used, key[ok])
        pending = pending[~ok]
    for u in np.unique(want[pending]):
        slots = pending[want[pending] == u]
        taken = used[(used >= u * n_items) & (used < (u + 1) * n_items)] - u * n_items
        free = np.setdiff1d(np.arange(n_items), taken)
        chosen[slots] = rng.choice(free, len(slots), replace=False)
    return chosen


def history(ev: Events, user_start: np.ndarray, user: np.ndarray, time: np.ndarray, length: int) -> np.ndarray:
    """Indices into ``ev`` of each sample's user's last ``length`` events strictly before the
    sample's time, most recent first; -1 pads. [S, length]"""
    t0 = int(ev.time.min())
    span = int(ev.time.max()) - t0 + 2
    user_idx = np.repeat(np.arange(len(user_start) - 1), np.diff(user_start))
    keys = user_idx * span + (ev.time - t0)  # sorted, since events are sorted by (user, time)
    end = np.searchsorted(keys, user * span + (time - t0), side="left")  # first event at or after time
    idx = end[:, None] - 1 - np.arange(length)[None, :]
    return np.where(idx >= user_start[user][:, None], idx, -1)


def _lists(values: np.ndarray, idx: np.ndarray) -> pa.ListArray:
    """Rows of ``values[idx]`` without the -1 padding (which only ever trails)."""
    valid = idx >= 0
    offsets = np.concatenate([[0], np.cumsum(valid.sum(1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[idx[valid]]))


def build_samples(ev: Events, *, negatives: int, history_length: int, seed: int) -> pa.Table:
    """(user, item) samples with labels and leakage-free history features (see the module doc)."""
    ev = ev.sorted()
    rng = np.random.default_rng(seed)
    users, user_idx = np.unique(ev.user, return_inverse=True)
    user_start = np.concatenate([[0], np.cumsum(np.bincount(user_idx, minlength=len(users)))])
    items, item_idx = np.unique(ev.item, return_inverse=True)
    item_category = np.empty(len(items), dtype=np.int64)
    item_category[item_idx] = ev.category  # an item's category (the last event's, if they differ)
    n_items = len(items)

    pair_key = user_idx.astype(np.int64) * n_items + item_idx
    pairs, first, pair_of_event = np.unique(pair_key, return_index=True, return_inverse=True)
    labels = {
        task: np.bincount(pair_of_event[ev.behavior == BEHAVIORS.index(b)], minlength=len(pairs)) > 0
        for task, b in TASKS.items()
    }
    pos_user, pos_item = pairs // n_items, pairs % n_items

    per_user = np.bincount(pos_user, minlength=len(users))
    k = np.minimum(negatives * per_user, n_items - per_user)
    neg_user = np.repeat(np.arange(len(users)), k)
    neg_item = sample_negatives(pairs, neg_user, n_items, rng)
    lo, hi = ev.time[user_start[:-1]], ev.time[user_start[1:] - 1]
    neg_time = rng.integers(lo[neg_user], hi[neg_user] + 1)

    user = np.concatenate([pos_user, neg_user])
    item = np.concatenate([pos_item, neg_item])
    time = np.concatenate([ev.time[first], neg_time])
    category = item_category[item]
    hist = history(ev, user_start, user, time, history_length)  # [S, history_length]
    columns = {
        "user_id": users[user],
        "item_id": items[item],
        "category_id": category,
        "time": time,
        "hist_items": _lists(ev.item, hist),
        "hist_categories": _lists(ev.category, hist),
        # how many of those events share the sample's category (mean pooling cannot tell)
        "hist_category_matches": ((ev.category[hist] == category[:, None]) & (hist >= 0)).sum(1),
    }
    for task, y in labels.items():
        columns[task] = np.concatenate([y, np.zeros(len(neg_user), dtype=bool)]).astype(np.int8)
    return pa.table(columns)


def default_schema(history_length: int) -> Schema:
    features = (
        FeatureSpec("user_id", "categorical"),
        FeatureSpec("item_id", "categorical", min_count=2),
        FeatureSpec("category_id", "categorical"),
        FeatureSpec("hist_items", "sequence", min_count=2, max_len=history_length),
        FeatureSpec("hist_categories", "sequence", max_len=history_length),
        FeatureSpec("hist_category_matches", "numeric", transform="log1p"),
    )
    tasks = (TaskSpec("click", "binary"),) + tuple(TaskSpec(t, "binary", where="click") for t in ("cart", "fav", "buy"))
    return Schema(features, tasks, group="user_id")


@SOURCES.register("taobao_userbehavior")
class TaobaoUserBehavior(DataSource):
    description = "Taobao UserBehavior events -> (user, item) samples with sampled negatives and history"
    path_help = "the UserBehavior.csv event file (.gz ok; no header)"
    tasks = ("click", "cart (where click)", "fav (where click)", "buy (where click)")

    def __init__(
        self,
        *,
        negatives: Annotated[int, Field(ge=0)] = 4,
        history: Annotated[int, Field(ge=1)] = 20,
        seed: int = 0,
        split_by_time: bool = True,
    ) -> None:
        self.negatives = negatives
        self.history = history
        self.seed = seed
        self.split_by_time = split_by_time

    def load(self, cfg: DataConfig) -> Source:
        path = require_path(cfg)
        if not path.is_file():
            raise ConfigError(f"data.path: {path} is a folder; taobao_userbehavior reads {self.path_help}")
        table = build_samples(read_events(path), negatives=self.negatives, history_length=self.history, seed=self.seed)
        schema = default_schema(self.history)
        origin = RowOrigin(f"the table of samples built from {path.name}")  # no row of it is a line of the file
        if not self.split_by_time:
            return Source(table, schema, origin)
        if cfg.split.method != "random":
            raise ConfigError(
                f"data.split.method: taobao_userbehavior splits by sample time; set "
                f"data.taobao_userbehavior.split_by_time: false to split by data.split.method '{cfg.split.method}'"
            )
        by_time = SplitConfig(method="time", column="time", valid=cfg.split.valid, test=cfg.split.test)
        splits, split_origins = split_table(table, by_time, origin)
        return Source(table, schema, origin, splits, split_origins)
