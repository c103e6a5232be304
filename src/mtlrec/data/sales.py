"""Sales forecasting data: one row per item on sale per day, built from day-partitioned impression logs.

A shop forecasts each item's units and revenue for the next day (to reorder stock, plan a sale) from
what earlier days showed. ``SalesDays`` reads the days in order, each one's impression log and its
catalogue (the items on sale: ``shop_days.ShopDay`` carries both), and returns each day's rows as
soon as ``HISTORY`` earlier days are known; ``sales_table`` does it for a whole run of days.

A row (item i, day d)
  day, item_id, category, brand, price, item_rating    the item as listed on day d
  units, revenue    what it sold on day d: the quantities of its orders (order_value / price) and
                    their order_value, summed; 0 on a day it sold nothing (or was shown to no one)
  units_lag1, clicks_lag1, views_lag1    day d-1's units, clicks and impressions
  units_7d, clicks_7d, views_7d          their sums over days d-7 .. d-1
  units_lag7        day d-7's units: the seasonal-naive forecast (last week's same day)
  listed_7d         how many of days d-7 .. d-1 the item was on sale (a new item's zero lags are
                    not a slump)
  oracle_units      the expected units given day d's impressions: the sum over them of
                    P(click) P(purchase | click) E[quantity | purchase] (the simulator's truth;
                    when the logs carry oracle_click, oracle_purchase and oracle_order_value)
  oracle_revenue    price * oracle_units

No lag reads day d or later: day d's features are computed from the days before it, and only then
is day d added to the history. The oracle knows how many times day d showed the item, which no
forecast made the evening before does: it bounds from below what a forecaster can reach, and
the gap includes the day's traffic noise.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Protocol

import numpy as np
import pyarrow as pa

from mtlrec.data.columns import as_float, require_columns
from mtlrec.errors import DataError

HISTORY = 7  # days of history a row needs (the 7-day sums and last week's same day)
ATTRIBUTES = ("item_id", "category", "brand", "price", "item_rating")
LOG_COLUMNS = ("item_id", "click", "order_value", "price")
ORACLE_COLUMNS = ("oracle_click", "oracle_purchase", "oracle_order_value")
COUNTS = ("units", "clicks", "views")


class Day(Protocol):
    """One day of logs: ``shop_days.ShopDay`` is one."""

    day: int
    table: pa.Table  # the day's impressions
    catalogue: pa.Table | None  # the items on sale that day


class SalesDays:
    """Turns days of logs, given in order, into item x day rows (module docstring)."""

    def __init__(self) -> None:
        self.history: deque[dict[str, np.ndarray]] = deque(maxlen=HISTORY)  # the last days' per-item totals
        self.last_day: int | None = None

    def add(self, day: Day) -> pa.Table | None:
        """Day ``day``'s rows (None while fewer than ``HISTORY`` days came before it); then the day
        joins the history."""
        if self.last_day is not None and day.day != self.last_day + 1:
            raise ValueError(f"sales table: day {day.day} after day {self.last_day}; expected day {self.last_day + 1}")
        if day.catalogue is None:
            raise ValueError(f"sales table: day {day.day} has no catalogue (the items on sale)")
        where = f"day {day.day}'s impressions"
        require_columns(day.table, list(LOG_COLUMNS), where)
        require_columns(day.catalogue, list(ATTRIBUTES), f"day {day.day}'s catalogue")
        items = _ids(day.catalogue["item_id"], f"day {day.day}'s catalogue")
        shown = _ids(day.table["item_id"], where)
        totals = _totals(day.table, shown, where, size=max(_top(items), _top(shown)) + 1)
        totals["listed"] = np.bincount(items, minlength=totals["units"].size).astype(np.float64)
        rows = self._rows(day, items, totals) if len(self.history) == HISTORY else None
        self.history.append(totals)
        self.last_day = day.day
        return rows

    def _rows(self, day: Day, items: np.ndarray, today: dict[str, np.ndarray]) -> pa.Table:
        past = list(self.history)  # past[-1] is day d-1, past[0] day d-7

        def lag(name: str, k: int) -> np.ndarray:
            return _at(past[-k][name], items)

        def week(name: str) -> np.ndarray:
            return np.sum([_at(p[name], items) for p in past], axis=0)

        columns = {"day": np.full(items.size, day.day, np.int64)}
        columns.update({name: day.catalogue[name] for name in ATTRIBUTES})
        columns.update({name: today[name][items] for name in ("units", "revenue")})
        columns.update({f"{name}_lag1": lag(name, 1) for name in COUNTS})
        columns.update({f"{name}_7d": week(name) for name in COUNTS})
        columns["units_lag7"] = lag("units", HISTORY)
        columns["listed_7d"] = week("listed")
        if "oracle_units" in today:
            columns["oracle_units"] = today["oracle_units"][items]
            columns["oracle_revenue"] = columns["oracle_units"] * as_float(day.catalogue["price"], "price", "catalogue")
        return pa.table(columns)


def sales_table(days: Iterable[Day]) -> pa.Table:
    """Every row of ``days`` (consecutive, in order): the days after the first ``HISTORY``."""
    builder = SalesDays()
    parts = [rows for rows in map(builder.add, days) if rows is not None]
    if not parts:
        raise ValueError(f"sales table: needs more than {HISTORY} days (the first {HISTORY} only give history)")
    return pa.concat_tables(parts)


def _totals(table: pa.Table, item: np.ndarray, where: str, size: int) -> dict[str, np.ndarray]:
    """Per-item sums over one day's impressions, [size] arrays indexed by item id."""
    order_value = as_float(table["order_value"], "order_value", where)
    price = as_float(table["price"], "price", where)
    units = np.where(order_value > 0, np.rint(order_value / np.where(price > 0, price, 1.0)), 0.0)
    per_row = {"units": units, "revenue": order_value, "clicks": as_float(table["click"], "click", where),
               "views": np.ones(len(item))}  # fmt: skip
    if all(c in table.column_names for c in ORACLE_COLUMNS):
        p_click, p_buy, value = (as_float(table[c], c, where) for c in ORACLE_COLUMNS)
        per_row["oracle_units"] = p_click * p_buy * value / price  # E[quantity | purchase] = value / price
    return {name: np.bincount(item, weights=w, minlength=size) for name, w in per_row.items()}


def _ids(col: pa.ChunkedArray, where: str) -> np.ndarray:
    if not pa.types.is_integer(col.type) or col.null_count:
        raise DataError(f"column 'item_id' in {where}: expected integer ids >= 0 without missing values, got {col.type}")
    ids = col.to_numpy()
    if len(ids) and ids.min() < 0:
        raise DataError(f"column 'item_id' in {where}: expected integer ids >= 0, got {ids.min()}")
    return ids


def _top(ids: np.ndarray) -> int:
    return int(ids.max()) if len(ids) else -1


def _at(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``values[ids]``, 0 for ids past its end (items not yet listed on that day)."""
    out = np.zeros(ids.size)
    inside = ids < values.size
    out[inside] = values[ids[inside]]
    return out
