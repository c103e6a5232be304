"""A shop that changes: one simulated shop logged day after day, for continual training.

``simulate_days`` keeps one world of ``synthetic`` (its users, items, funnel and ``oracle_*`` columns)
alive over ``days`` consecutive days and yields one impression log per day. Each day after the first
drifts, then turns its catalogue over, then is logged.

What persists
  users      all ``users`` are drawn once (segment, activity, brand loyalty, biases) and come back day
             after day. Their recorded profile (``user_cat_clicks`` and ``recent_categories`` from the
             ~200-click history, ``user_price_pref``, ``user_activity``) is the snapshot the shop held
             before day 1 and is not updated: a 200-click window moves little in a week. Memory grows
             with ``users * categories`` (``simulate`` draws only the users that show up).
  items      an item keeps its id, category, brand, list price, quality and rating while on sale; ids
             are never reused, so they are unique across days.

What drifts (``drift`` = d, a rate per day; 0 = nothing drifts)
  Each drifting quantity follows a stationary process whose distribution is day 1's (or starts at
  day 1's value and spreads to a stationary sd) and keeps a correlation of exp(-d) with its value
  the day before, exp(-d k) with its value k days before: label rates and the distributions of prices
  and interests stay as on day 1, but who likes what, which brand is trusted and what sells move.
  The default d = DRIFT = 0.1 leaves a correlation of 0.55 with day 1 on day 7; 0.02 to 0.05 gives a
  shop that changes over months.
  interests    each user's Dirichlet theta moves towards fresh draws: its gamma variables are thinned
               by Beta(a e^-d, a (1 - e^-d)) and topped up by Gamma(a (1 - e^-d)) (a: the Dirichlet
               parameters), so theta stays Dirichlet(a) every day. With the sparse Dirichlet's small
               a the thinning is nearly all or nothing: each day a user drops about a share
               1 - e^-d of their interests and now and then takes up a new one.
  sensitivity  each user's price sensitivity: AR(1) around the segment's mean, with the same spread.
  brand trust  AR(1), N(0, 1) every day.
  price level  each category's reference log price (what counts as normal: the zero of cheapness)
               wanders from day 1's by an AR(1) of stationary sd LEVEL_SD (e^0.25: about +-28 %).
               List prices stay as they were at listing; new items are priced at the day's level.
  demand       each category's seasonal demand, added to its items' click logit (the hidden appeal
               of ``synthetic``, which also reaches cart and purchase through ``correlation``): AR(1)
               from 0 with stationary sd DEMAND_SD.
Since the profile does not move, drift changes the mapping from the observed features to the labels:
``user_cat_clicks`` and ``recent_categories`` say less about today's interests and ``user_price_pref``
about today's sensitivity (no model can recover these without per-user ids), while a brand id, a
category and a price in a category stand for another trust, demand and bargain (a model trained on
recent days can learn these back). The oracle columns follow the day's world. Measured (seed 0,
100,000 rows a day, the shared_bottom of configs/synthetic.yaml trained on day 1): its click AUC lies
0.016 below the oracle's on day 2 and 0.017 on day 7 at d = 0, 0.023 and 0.050 at d = 0.1, where the
same model trained on day 6 wins back 0.009 of it on day 7 (purchase: 0.015 and 0.015 at d = 0, 0.024
and 0.050 at d = 0.1; 0.011 won back).

Catalogue turnover (``churn`` = c, a share per day; independent of drift)
  Each day an item on sale leaves with probability c (the last item of a category stays) and as many
  new items arrive, with fresh ids, drawn as day 1's were: category uniform, brand uniform over all
  brands so far, priced at the day's levels. Poisson(c * brands * NEW_BRAND_SHARE) new brands (about
  one a day by default; trust N(0, 1), ids after the last brand) launch with up to LAUNCH_ITEMS of
  the day's new items each. With d = 0 the shop is stationary: new items and brands come from the
  same distributions as old ones (only a model keyed on their ids can miss them); with c = 0 too,
  every day is the same world and only the sampling of requests and labels differs.

Logs
  Each day has ``rows`` impressions drawn as ``simulate`` draws them (requests of ``page_size`` items,
  users by activity, ~60 % of items from the user's interests), with ``ts`` inside the day (day 1
  starts at START_TS, 2024-06-01 00:00 UTC), ``request_id`` continuing from the day before, and the
  columns of ``simulate``: ``default_schema(categories)`` applies to every day.

Randomness
  One seed; the world and its turnover, the drift and the logs draw from three separate streams, so
  the same seed under another drift has the same users, catalogue ids and turnover (only the drifting
  quantities, and the list prices of new items, differ), and day k does not depend on ``days``.
  ``applications=True`` adds the application columns of ``shop_labels`` (today's sensitivity, titles
  and categories of every item listed) from a fourth stream: the other columns stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from mtlrec.data.shop_labels import ShopApplications
from mtlrec.data.synthetic import (
    ACTIVITY, PRICE_SENSITIVITY, PRICE_SPREAD, SEGMENT_PRIOR, SEGMENTS, SENSITIVITY_SPREAD, START_TS,
    _as_arrow, _RowSampler, _category_index, _check, _concentration, _impressions, _interest_probs, _items,
    _list_items, _request_times, _users,
)  # fmt: skip

DRIFT, CHURN = 0.1, 0.02  # defaults: per-day drift rate, share of the catalogue replaced per day
MAX_DRIFT = 10.0  # e^-10: a fresh world every day
LEVEL_SD = 0.25  # stationary sd of a category's reference log price around day 1's
DEMAND_SD = 0.3  # stationary sd of a category's seasonal demand (added to its items' click logit)
NEW_BRAND_SHARE = 0.25  # new brands per day = Poisson(churn * brands * NEW_BRAND_SHARE)
LAUNCH_ITEMS = 5  # new items given to each new brand on its first day (while the day's new items last)
_ITEM_KEYS = ("category", "brand", "price", "cheapness", "quality", "rating", "bias", "listed_level")


@dataclass(frozen=True)
class ShopDay:
    """One day of the shop: its impression log and what happened to the catalogue that morning."""

    day: int  # 1, 2, ...
    table: pa.Table  # the day's impressions, columns as simulate()'s
    new_items: int  # items listed this day (ids never used before); 0 on day 1
    left_items: int  # items no longer on sale from this day
    new_brands: int  # brands launched this day
    items_on_sale: int  # the catalogue the day's pages are drawn from
    catalogue: pa.Table | None = None  # the items on sale: item_id, category, brand, price, item_rating


def simulate_days(
    *,
    days: int = 7,
    rows: int = 100_000,
    users: int = 20_000,
    items: int = 10_000,
    categories: int = 20,
    brands: int = 200,
    page_size: int = 10,
    correlation: float = 0.5,
    drift: float = DRIFT,
    churn: float = CHURN,
    seed: int = 0,
    applications: bool = False,
) -> Iterator[ShopDay]:
    """Impression logs of one shop over ``days`` days, one ``ShopDay`` at a time (see the module
    docstring); ``rows`` impressions a day. The arguments are checked and day 1's world is drawn at
    the call, each day's log as it is iterated."""
    _check(rows, users, items, categories, brands, page_size, correlation, caller="simulate_days")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ValueError(f"simulate_days: days must be an integer >= 1, got {days!r}")
    for name, value, top in (("drift", drift, MAX_DRIFT), ("churn", churn, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value <= top:
            raise ValueError(f"simulate_days: {name} must be a number in [0, {top:g}], got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"simulate_days: seed must be an integer >= 0, got {seed!r}")
    shop = _Shop(users=users, items=items, categories=categories, brands=brands, seed=seed,
                 applications=applications)  # fmt: skip
    return _days(shop, days, rows, page_size, correlation, drift, churn)


def _days(
    shop: _Shop, days: int, rows: int, page_size: int, correlation: float, drift: float, churn: float
) -> Iterator[ShopDay]:
    users = shop.request_share.size
    n_requests = -(-rows // page_size)
    user_ids = np.arange(users)
    for day in range(1, days + 1):
        new_items = left_items = new_brands = 0
        if day > 1:
            shop.drift(drift)
            new_items, left_items, new_brands = shop.turn_over(churn)
        request_user = shop.logs.choice(users, size=n_requests, p=shop.request_share)
        ts = _request_times(shop.logs, n_requests, START_TS + (day - 1) * 86_400, 1)
        table = _impressions(
            shop.logs, shop.users_today(), shop.items_today(), shop.popularity, request_user, user_ids, ts,
            rows=rows, page_size=page_size, correlation=correlation, first_request=(day - 1) * n_requests,
            applications=shop.applications,
        )  # fmt: skip
        yield ShopDay(day, table, new_items, left_items, new_brands, int(shop.on_sale.sum()), shop.catalogue())


class _Shop:
    """What persists from day to day: every user, every item ever listed, every brand; the drifting
    state (interest gammas, sensitivity, brand trust, price levels, demand), the catalogue on sale,
    and the three random streams (world and turnover, drift, logs), with ``applications`` a fourth."""

    def __init__(
        self, *, users: int, items: int, categories: int, brands: int, seed: int, applications: bool = False
    ) -> None:
        streams = np.random.SeedSequence(seed).spawn(3)
        self.world, self.drifting, self.logs = (np.random.default_rng(s) for s in streams)
        rng = self.world  # day 1's world, then each day's turnover
        self.brands = brands  # at the start: sets the rate of new brands
        self.popularity = rng.dirichlet(np.full(categories, 5.0))  # [C] category share of attention
        catalogue = _items(rng, items, categories, brands)
        self.item = {key: catalogue[key] for key in _ITEM_KEYS[:-1]}  # [N] arrays, N = items ever listed
        self.item["listed_level"] = catalogue["level"][catalogue["category"]]  # level when priced
        self.applications = ShopApplications(seed, categories) if applications else None
        if self.applications is not None:
            self.item.update(self.applications.items(self.item["category"]))
        self.on_sale = np.ones(items, bool)
        self.trust = catalogue["brand_trust"]  # [B]
        self.base_level, self.level_shift = catalogue["level"], np.zeros(categories)  # [C]
        self.demand = np.zeros(categories)  # [C]

        segment = rng.choice(len(SEGMENTS), size=users, p=SEGMENT_PRIOR)
        activity = np.asarray(ACTIVITY)[segment] * rng.lognormal(0.0, 0.7, users)
        self.request_share = activity / activity.sum()
        self.user = _users(rng, segment, activity, categories, self.popularity)
        # theta ~ Dirichlet(a) times an independent Gamma(sum a) total: independent Gamma(a) variables
        self.alpha = _concentration(segment, categories, self.popularity)  # [U, C]
        self.gamma = self.user["theta"] * rng.gamma(self.alpha.sum(axis=1))[:, None]
        self.sensitivity_mean = np.asarray(PRICE_SENSITIVITY)[segment]
        self.sensitivity_z = (self.user["sensitivity"] - self.sensitivity_mean) / SENSITIVITY_SPREAD

    def drift(self, rate: float) -> None:
        """One day of drift: every drifting quantity keeps a correlation exp(-rate) with today's."""
        rng, keep = self.drifting, np.exp(-rate)
        if rate > 0:  # beta-gamma thinning: Gamma(a) -> Gamma(keep a) + an independent Gamma((1 - keep) a)
            a = self.alpha
            self.gamma = rng.beta(a * keep, a * (1.0 - keep)) * self.gamma + rng.gamma(a * (1.0 - keep))
        self.sensitivity_z = _ar1(rng, self.sensitivity_z, keep)
        self.trust = _ar1(rng, self.trust, keep)
        self.level_shift = _ar1(rng, self.level_shift, keep, LEVEL_SD)
        self.demand = _ar1(rng, self.demand, keep, DEMAND_SD)

    def turn_over(self, churn: float) -> tuple[int, int, int]:
        """Items leave, as many arrive (some from new brands); returns (new items, left, new brands)."""
        rng, category, categories = self.world, self.item["category"], self.base_level.size
        leaving = self.on_sale & (rng.random(self.on_sale.size) < churn)
        staying = np.bincount(category[self.on_sale & ~leaving], minlength=categories)
        candidates = np.flatnonzero(leaving)
        emptied, first = np.unique(category[candidates], return_index=True)
        leaving[candidates[first[staying[emptied] == 0]]] = False  # a category keeps its last item
        self.on_sale &= ~leaving
        n_new = int(leaving.sum())

        n_brands = min(int(rng.poisson(churn * self.brands * NEW_BRAND_SHARE)), n_new)
        launched = self.trust.size + np.arange(n_brands)
        self.trust = np.concatenate([self.trust, rng.normal(0.0, 1.0, n_brands)])
        new_category = rng.integers(0, categories, n_new)
        new_brand = rng.integers(0, self.trust.size, n_new)
        launch = min(n_brands * LAUNCH_ITEMS, n_new)
        new_brand[:launch] = launched[np.arange(launch) % max(n_brands, 1)]
        level = (self.base_level + self.level_shift)[new_category]
        new = _list_items(rng, new_category, new_brand, self.trust[new_brand], level)
        new["listed_level"] = level
        if self.applications is not None:
            new.update(self.applications.items(new_category))
        self.item = {key: np.concatenate([self.item[key], new[key]]) for key in self.item}
        self.on_sale = np.concatenate([self.on_sale, np.ones(n_new, bool)])
        return n_new, n_new, n_brands

    def catalogue(self) -> pa.Table:
        """The items on sale, by id, with the attributes their impressions show (no random draws)."""
        ids = np.flatnonzero(self.on_sale)
        return pa.table({"item_id": _as_arrow(ids), "category": _as_arrow(self.item["category"][ids]),
                         "brand": _as_arrow(self.item["brand"][ids]), "price": self.item["price"][ids],
                         "item_rating": _as_arrow(self.item["rating"][ids])})  # fmt: skip

    def users_today(self) -> dict:
        """Every user as ``synthetic._users`` describes them, with today's interests and sensitivity."""
        theta = self.gamma + 1e-12
        theta /= theta.sum(axis=1, keepdims=True)  # [U, C]
        sensitivity = np.maximum(self.sensitivity_mean + SENSITIVITY_SPREAD * self.sensitivity_z, 0.0)
        return {**self.user, "theta": theta, "sampler": _RowSampler(theta), "sensitivity": sensitivity,
                "interest_probs": _interest_probs(theta)}  # fmt: skip

    def items_today(self) -> dict:
        """Every item ever listed, with today's trust, cheapness and demand, indexed for the items on sale."""
        item = self.item
        level = self.base_level + self.level_shift
        cheapness = item["cheapness"] + (level[item["category"]] - item["listed_level"]) / PRICE_SPREAD
        return {**item, "trust": self.trust[item["brand"]], "cheapness": cheapness,
                "bias": item["bias"] + self.demand[item["category"]],
                **_category_index(item["category"], level.size, self.on_sale)}  # fmt: skip


def _ar1(rng: np.random.Generator, x: np.ndarray, keep: float, sd: float = 1.0) -> np.ndarray:
    """One step of a stationary AR(1) process of sd ``sd``: correlation ``keep`` with ``x``."""
    return keep * x + np.sqrt(1.0 - keep**2) * sd * rng.normal(0.0, 1.0, x.shape)
