"""The built-in shop simulator: impression logs with known ground truth.

A seeded, fully vectorised world of users, items and requests (no Python loop over rows, users or
items). Every latent quantity is drawn once per user or per item and indexed by the rows that need it.

The world
  users     a latent shopper type (one of ``SEGMENTS``), sparse interests over categories
            (Dirichlet), price sensitivity (high for bargain hunters), brand loyalty (high for
            brand-loyal shoppers), activity (how often they come back) and a small latent click bias.
  items     category, brand (brands have a latent trust), log-normal price whose level depends on the
            category, latent quality and a small latent appeal.
  requests  one user (drawn by activity) sees a page of ``page_size`` items at positions
            0..page_size-1, in random order; about 60 % of the items come from the user's own
            interests, the rest from the whole catalogue. ``ts`` (unix seconds, non-decreasing in
            ``request_id``, 30 days from 2024-06-01 UTC) and ``hour`` agree with each other.

The funnel (labels)
  click       ~ Bernoulli(p_click): position (strongly decreasing), interest in the item's category,
              quality, cheapness for the category, small device and hour effects.
  add_to_cart ~ Bernoulli(p_cart) only after a click (0 otherwise).
  purchase    ~ Bernoulli(p_purchase) only after a click (0 otherwise), independent of add_to_cart
              given the click. Drivers: quality, brand trust x brand loyalty, a strong penalty for
              price x price sensitivity, interest; items cheap for their category convert worse.
              ``correlation`` mixes the click relevance into it: 1 -> mostly a rescaled click
              logit, 0 -> its own drivers only.
  order_value = price * quantity when purchased (quantity = 1 + Poisson, more for cheap items), else 0.
  user_segment  the latent segment seen through 10 % label noise; interests: the categories a user
              cares about (each included with a steep sigmoid of the latent interest).

Observed features carry the latent state: ``user_cat_clicks`` (clicks in the item's category among
the user's ~100 past clicks), ``recent_categories`` (the last 10 of those clicks), ``item_rating``
(noisy quality, ~2 % missing), ``user_price_pref`` (average price of past orders, a noisy proxy of
price sensitivity), ``user_activity`` (past session count), plus ids, price, position, hour, device.

Ground truth sits beside each row in ``oracle_*`` columns (p_click, P(cart | click),
P(purchase | click), E[order_value | purchase], class and inclusion probabilities of the profiling
labels): scoring them with a task's metric gives the best achievable value on any split.

Rows: ``ceil(rows / page_size)`` requests are drawn and the table is cut to exactly ``rows`` rows, so
the last request may show fewer than ``page_size`` items.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.spec import FeatureSpec, Schema, TaskSpec

ORACLE_PREFIX = "oracle_"
SEGMENTS = ("bargain_hunter", "brand_loyal", "explorer", "impulse")
DEVICES = ("ios", "android", "web")

# --- the world's constants; per-segment tuples follow the order of SEGMENTS --------------------------
SEGMENT_PRIOR = (0.30, 0.20, 0.25, 0.25)
SEGMENT_LABEL_NOISE = 0.10  # the observed segment is uniform over all segments with this probability
DIRICHLET_CONCENTRATION = (0.15, 0.12, 0.60, 0.20)  # per category (times C * popularity): low = sparse
PRICE_SENSITIVITY = (1.6, 0.6, 0.9, 0.5)  # mean; normal spread SENSITIVITY_SPREAD, at least 0
SENSITIVITY_SPREAD = 0.2
BRAND_LOYALTY = ((2, 8), (8, 2), (2, 8), (2, 8))  # Beta(a, b)
ACTIVITY = (1.0, 0.8, 1.2, 1.6)  # median activity; log-normal spread 0.7
IMPULSE_CLICK, IMPULSE_PURCHASE = 0.1, 0.15  # unobserved extra propensity of impulse shoppers
USER_BIAS_SD, ITEM_BIAS_SD = 0.05, 0.05  # unobserved per-user click bias and per-item appeal
HISTORY_CLICKS, RECENT_CLICKS = 200, 10  # past clicks behind user_cat_clicks; last ones in the sequence
INTEREST_SHARE = 0.6  # share of shown items drawn from the user's own interests
INTEREST_LABEL_SLOPE, INTEREST_LABEL_AT = 40.0, 0.08  # P(category in `interests`) = sigmoid(s * (theta - at))
DEVICE_PRIOR = (0.40, 0.45, 0.15)
HOUR_PRIOR = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2, 2, 2, 2.2,
                       2.5, 2.2, 2, 2, 2.2, 2.5, 3, 3.5, 4, 4, 3, 2])  # fmt: skip
START_TS, DAYS = 1_717_200_000, 30  # 2024-06-01 00:00 UTC

PRICE_LEVEL = (np.log(6.0), np.log(150.0))  # category median prices drawn log-uniform in this range
PRICE_SPREAD = 0.6  # log-price sd within a category
LOG_PRICE_REF = np.log(30.0)  # the price penalty is zero at this price
PRICE_PREF_SLOPE = 0.9  # log user_price_pref = LOG_PRICE_REF + slope * (1 - sensitivity) + noise
PRICE_PREF_NOISE = 0.05
RATING_MEAN, RATING_SCALE, RATING_NOISE, RATING_MISSING = 3.7, 0.5, 0.05, 0.02

# click logit = B_CLICK + relevance + position + device + hour
B_CLICK = -2.2
W_POSITION = 1.0  # times log1p(position)
W_INTEREST = 2.6  # times sqrt(theta[user, category])
W_QUALITY = 0.35
W_TRUST = 0.3  # trusted brands attract clicks a little
W_CHEAP = 0.35  # times the item's log price below its category's level, in sd units
DEVICE_CLICK = (0.1, 0.0, -0.15)
W_HOUR = 0.15  # times cos(2 pi (hour - 20) / 24): evenings click more
CLICK_CENTER = 1.45  # about the mean click relevance of clicked rows
# purchase | click logit = B_PURCHASE + mix(click relevance, own drivers) + device
B_PURCHASE = -2.45
P_QUALITY = 0.6
P_BRAND = 0.6  # times loyalty * trust
P_PRICE = 1.2  # times sensitivity * (log price - LOG_PRICE_REF)
P_INTEREST = 1.0
P_CHEAP = 0.3  # items cheap for their category convert worse (opposes W_CHEAP)
OWN_CENTER = 0.75
SHARE_SCALE = 1.0  # click relevance rescaled into purchase's logit
DEVICE_PURCHASE = (0.0, -0.1, 0.2)
# add_to_cart | click logit = B_CART + half click relevance + half purchase relevance
B_CART = -2.1
QUANTITY_RATE = 1.2  # quantity = 1 + Poisson(QUANTITY_RATE / (1 + price / QUANTITY_PRICE))
QUANTITY_PRICE = 15.0


def simulate(
    *,
    rows: int = 200_000,
    users: int = 20_000,
    items: int = 10_000,
    categories: int = 20,
    brands: int = 200,
    page_size: int = 10,
    correlation: float = 0.5,
    seed: int = 0,
) -> pa.Table:
    """An impression log of ``rows`` rows with labels, features and ``oracle_*`` ground truth."""
    _check(rows=rows, users=users, items=items, categories=categories, brands=brands,
           page_size=page_size, correlation=correlation)  # fmt: skip
    rng = np.random.default_rng(seed)
    popularity = rng.dirichlet(np.full(categories, 5.0))  # [C] category share of attention
    user = _users(rng, users, categories, popularity)
    item = _items(rng, items, categories, brands)

    n_requests = -(-rows // page_size)
    request_user = rng.choice(users, size=n_requests, p=user["activity"] / user["activity"].sum())
    ts = np.sort(
        START_TS
        + rng.integers(0, DAYS, n_requests) * 86_400
        + rng.choice(24, size=n_requests, p=HOUR_PRIOR / HOUR_PRIOR.sum()) * 3_600
        + rng.integers(0, 3_600, n_requests)
    )
    device = rng.choice(len(DEVICES), size=n_requests, p=DEVICE_PRIOR)

    request = np.repeat(np.arange(n_requests), page_size)[:rows]
    position = rng.permuted(np.tile(np.arange(page_size), (n_requests, 1)), axis=1).ravel()[:rows]
    u = request_user[request]
    category = np.where(
        rng.random(rows) < INTEREST_SHARE,
        _draw_from_rows(rng, user["theta_cdf"], u),
        rng.choice(categories, size=rows, p=popularity),
    )
    first, count = item["category_start"][category], item["category_count"][category]
    i = item["by_category"][first + (rng.random(rows) * count).astype(np.int64)]
    hour = (ts[request] - START_TS) // 3_600 % 24
    dev = device[request]

    truth = _funnel_probabilities(user, item, u, i, position, hour, dev, correlation, categories)
    click = rng.random(rows) < truth["click"]
    cart = click & (rng.random(rows) < truth["add_to_cart"])
    purchase = click & (rng.random(rows) < truth["purchase"])
    price = item["price"][i]
    quantity = 1 + rng.poisson(truth["quantity_rate"])
    order_value = np.where(purchase, price * quantity, 0.0)

    per_row = pa.array(u)
    columns = {
        "request_id": request,
        "ts": ts[request],
        "user_id": u,
        "item_id": i,
        "position": position,
        "hour": hour,
        "device": pc.take(pa.array(DEVICES), pa.array(dev)),
        "category": category,
        "brand": item["brand"][i],
        "price": price,
        "item_rating": item["rating"][i],
        "user_price_pref": user["price_pref"][u],
        "user_activity": user["sessions"][u],
        "user_cat_clicks": user["history"].ravel()[u * categories + category].astype(np.float64),
        "recent_categories": user["recent"].take(per_row),
        "click": click.astype(np.int8),
        "add_to_cart": cart.astype(np.int8),
        "purchase": purchase.astype(np.int8),
        "order_value": order_value,
        "user_segment": user["segment_label"][u],
        "interests": user["interests"].take(per_row),
        ORACLE_PREFIX + "click": truth["click"],
        ORACLE_PREFIX + "add_to_cart": truth["add_to_cart"],
        ORACLE_PREFIX + "purchase": truth["purchase"],
        ORACLE_PREFIX + "order_value": price * (1.0 + truth["quantity_rate"]),
        ORACLE_PREFIX + "user_segment": user["segment_probs"].take(per_row),
        ORACLE_PREFIX + "interests": user["interest_probs"].take(per_row),
    }
    return pa.table({name: _as_arrow(values) for name, values in columns.items()})


def default_schema(categories: int = 20) -> Schema:
    """The schema of ``simulate(categories=...)``: what a config naming ``data.source: synthetic``
    gets when it gives no schema of its own."""
    categorical = ("user_id", "item_id", "category", "brand", "device", "hour", "position")
    features = [FeatureSpec(name, "categorical", min_count=1) for name in categorical]
    features += [
        FeatureSpec("price", "numeric", transform="log1p"),
        FeatureSpec("item_rating", "numeric"),
        FeatureSpec("user_price_pref", "numeric", transform="log1p"),
        FeatureSpec("user_activity", "numeric", transform="log1p"),
        FeatureSpec("user_cat_clicks", "numeric"),
        FeatureSpec("recent_categories", "sequence", max_len=RECENT_CLICKS),
    ]
    tasks = (
        TaskSpec("click", "binary"),
        TaskSpec("add_to_cart", "binary", where="click"),
        TaskSpec("purchase", "binary", where="click"),
        TaskSpec("order_value", "regression", where="purchase", transform="log1p"),
        TaskSpec("user_segment", "multiclass", n_classes=len(SEGMENTS), weight=0.5),
        TaskSpec("interests", "multilabel", n_classes=categories, weight=0.5),
    )
    return Schema(features=tuple(features), tasks=tasks, group="user_id")


def _check(*, correlation: float, page_size: int, rows: int, items: int, categories: int, **counts: int) -> None:
    for name, value in {"rows": rows, "items": items, "categories": categories, "page_size": page_size,
                        **counts}.items():  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"simulate: {name} must be an integer >= 1, got {value!r}")
    if rows < page_size:
        raise ValueError(f"simulate: rows must be >= page_size ({page_size}), got {rows}")
    if items < categories:
        raise ValueError(f"simulate: items must be >= categories ({categories}) so that every category has an item, got {items}")
    if not 0.0 <= correlation <= 1.0:  # also rejects NaN
        raise ValueError(f"simulate: correlation must be in [0, 1], got {correlation!r}")


def _users(rng: np.random.Generator, n: int, categories: int, popularity: np.ndarray) -> dict:
    """Latent state, observed profile and profiling labels of ``n`` users; [n] or [n, C] arrays."""
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_PRIOR)
    alpha = np.asarray(DIRICHLET_CONCENTRATION)[segment, None] * (categories * popularity)  # [n, C]
    theta = rng.gamma(alpha) + 1e-12
    theta /= theta.sum(axis=1, keepdims=True)  # [n, C] a sparse Dirichlet draw per user
    theta_cdf = np.cumsum(theta, axis=1)
    theta_cdf[:, -1] = 1.0

    recent = _draw_from_rows(rng, theta_cdf, np.repeat(np.arange(n), RECENT_CLICKS))  # [n * L]
    history = rng.poisson((HISTORY_CLICKS - RECENT_CLICKS) * theta)  # [n, C] older clicks
    history += np.bincount(np.repeat(np.arange(n), RECENT_CLICKS) * categories + recent,
                           minlength=n * categories).reshape(n, categories)  # fmt: skip

    sensitivity = np.maximum(np.asarray(PRICE_SENSITIVITY)[segment] + rng.normal(0.0, SENSITIVITY_SPREAD, n), 0.0)
    a, b = np.asarray(BRAND_LOYALTY).T
    loyalty = rng.beta(a[segment], b[segment])
    activity = np.asarray(ACTIVITY)[segment] * rng.lognormal(0.0, 0.7, n)
    # past orders: price-sensitive users paid less; a noisy proxy of sensitivity
    log_pref = LOG_PRICE_REF + PRICE_PREF_SLOPE * (1.0 - sensitivity) + rng.normal(0.0, PRICE_PREF_NOISE, n)
    price_pref = np.round(np.exp(log_pref), 2)
    sessions = (1 + rng.poisson(8.0 * activity)).astype(np.float64)

    noisy = rng.random(n) < SEGMENT_LABEL_NOISE
    segment_label = np.where(noisy, rng.integers(0, len(SEGMENTS), n), segment)
    segment_probs = np.full((n, len(SEGMENTS)), SEGMENT_LABEL_NOISE / len(SEGMENTS), np.float32)
    segment_probs[np.arange(n), segment] += 1.0 - SEGMENT_LABEL_NOISE
    interest_probs = _sigmoid(INTEREST_LABEL_SLOPE * (theta - INTEREST_LABEL_AT)).astype(np.float32)
    who, what = np.nonzero(rng.random((n, categories)) < interest_probs)  # row-major: sorted per user
    return {
        "segment": segment,
        "theta": theta,
        "theta_cdf": theta_cdf,
        "history": history,
        "recent": _lists(np.arange(0, n * RECENT_CLICKS + 1, RECENT_CLICKS), recent),
        "sensitivity": sensitivity,
        "loyalty": loyalty,
        "activity": activity,
        "bias": rng.normal(0.0, USER_BIAS_SD, n) + IMPULSE_CLICK * (segment == SEGMENTS.index("impulse")),
        "price_pref": price_pref,
        "sessions": sessions,
        "segment_label": segment_label,
        "segment_probs": pa.FixedSizeListArray.from_arrays(pa.array(segment_probs.ravel()), len(SEGMENTS)),
        "interests": _lists(np.concatenate([[0], np.cumsum(np.bincount(who, minlength=n))]), what),
        "interest_probs": pa.FixedSizeListArray.from_arrays(pa.array(interest_probs.ravel()), categories),
    }


def _items(rng: np.random.Generator, n: int, categories: int, brands: int) -> dict:
    """Catalogue of ``n`` items ([n] arrays) plus an index of the items of each category."""
    category = np.concatenate([np.arange(categories), rng.integers(0, categories, n - categories)])
    rng.shuffle(category)
    brand = rng.integers(0, brands, n)
    trust = rng.normal(0.0, 1.0, brands)[brand]
    level = rng.uniform(*PRICE_LEVEL, categories)  # [C] median log price per category
    z_price = rng.normal(0.0, 1.0, n)  # log price below/above the category level, in sd units
    price = np.round(np.exp(level[category] + PRICE_SPREAD * z_price + 0.15 * trust), 2) + 0.99
    quality = rng.normal(0.0, 1.0, n)
    rating = np.clip(RATING_MEAN + RATING_SCALE * quality + rng.normal(0.0, RATING_NOISE, n), 1.0, 5.0)
    rating = np.where(rng.random(n) < RATING_MISSING, np.nan, np.round(rating, 2))
    by_category = np.argsort(category, kind="stable")
    count = np.bincount(category, minlength=categories)
    return {
        "category": category,
        "brand": brand,
        "trust": trust,
        "price": price,
        "cheapness": -z_price,
        "quality": quality,
        "rating": rating,
        "bias": rng.normal(0.0, ITEM_BIAS_SD, n),
        "by_category": by_category,
        "category_start": np.concatenate([[0], np.cumsum(count)[:-1]]),
        "category_count": count,
    }


def _funnel_probabilities(
    user: dict, item: dict, u: np.ndarray, i: np.ndarray, position: np.ndarray, hour: np.ndarray,
    device: np.ndarray, correlation: float, categories: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-row p_click, P(cart | click), P(purchase | click) and the Poisson rate of extra quantity."""
    interest = np.sqrt(user["theta"].ravel()[u * categories + item["category"][i]])
    quality, cheapness = item["quality"][i], item["cheapness"][i]
    click_relevance = (
        W_INTEREST * interest + W_QUALITY * quality + W_TRUST * item["trust"][i] + W_CHEAP * cheapness + user["bias"][u] + item["bias"][i]
    )
    click_logit = (
        B_CLICK
        + click_relevance
        - W_POSITION * np.log1p(position)
        + np.asarray(DEVICE_CLICK)[device]
        + W_HOUR * np.cos(2 * np.pi * (hour - 20) / 24)
    )
    price = item["price"][i]
    impulse = user["segment"][u] == SEGMENTS.index("impulse")
    own = (
        P_QUALITY * quality
        + P_BRAND * user["loyalty"][u] * item["trust"][i]
        - P_PRICE * user["sensitivity"][u] * (np.log(price) - LOG_PRICE_REF)
        + P_INTEREST * interest
        - P_CHEAP * cheapness
        + IMPULSE_PURCHASE * impulse
    )
    # weights on a unit circle: correlation 1 -> click's relevance only, 0 -> purchase's own drivers only
    norm = np.hypot(correlation, 1.0 - correlation)
    purchase_relevance = (correlation * SHARE_SCALE * (click_relevance - CLICK_CENTER)
                          + (1.0 - correlation) * (own - OWN_CENTER)) / norm  # fmt: skip
    purchase_logit = B_PURCHASE + purchase_relevance + np.asarray(DEVICE_PURCHASE)[device]
    cart_logit = B_CART + 0.5 * SHARE_SCALE * (click_relevance - CLICK_CENTER) + 0.5 * purchase_relevance
    return {
        "click": _sigmoid(click_logit),
        "add_to_cart": _sigmoid(cart_logit),
        "purchase": _sigmoid(purchase_logit),
        "quantity_rate": QUANTITY_RATE / (1.0 + price / QUANTITY_PRICE),
    }


def _draw_from_rows(rng: np.random.Generator, cdf: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """One column index per entry of ``owner``, drawn from the distribution ``cdf[owner]``.

    cdf: [N, C] row-wise cumulative probabilities (last column 1). Rows are shifted by their index
    so one sorted search over the flattened array serves every owner at once.
    """
    n, c = cdf.shape
    flat = (cdf + np.arange(n)[:, None]).ravel()
    hit = np.searchsorted(flat, owner + rng.random(owner.size), side="right") - owner * c
    return np.minimum(hit, c - 1)


def _lists(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int32()))


def _as_arrow(values: np.ndarray | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    if values.dtype.kind in "iub" and values.dtype != np.int8:
        return pa.array(values, pa.int64())
    return pa.array(values)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
