"""The shop simulator's application columns (opt-in: ``simulate(applications=True)``): a user's
price sensitivity, item titles and item categories, each with its ground truth.

What they add to the world of ``synthetic``
  price sensitivity  the latent that already drives the funnel: per unit of log price above
                     LOG_PRICE_REF a user's click logit falls by W_PRICE * sensitivity and their
                     purchase logit (given a click) by (correlation W_PRICE + (1 - correlation)
                     P_PRICE) / hypot(correlation, 1 - correlation) * sensitivity, 0.92 * sensitivity
                     at correlation 0.5: a sensitivity of 1.6 (a bargain hunter's mean) halves the
                     purchase odds of an item priced 1.6x the reference, where a brand-loyal user
                     (0.6) loses a quarter. ``price_sensitivity`` is the latent as a
                     price test measures it: the latent plus N(0, SENSITIVITY_LABEL_NOISE^2), drawn
                     per impression; ``oracle_price_sensitivity`` is the latent itself.
  related category   every category has a few related ones (a Dirichlet(RELATED_CONCENTRATION) draw
                     over the others: phone cases go with phones); each item has one related
                     category ``r`` drawn from its category's and an affinity ``a`` ~ Beta(AFFINITY)
                     (U-shaped: most items clearly belong to one category or clearly to two).
  title              a fixed text per item, TITLE_WORDS + 1 space-separated tokens: the brand
                     (``b17``), then each word is one of the main category's WORDS_PER_CATEGORY words
                     (``c3w5``) with probability P_MAIN_WORD, one of the related category's with
                     P_RELATED_WORD * a, else one of GENERIC_WORDS shared words (``w12``). The
                     category is not written anywhere else: a title with no main-category word (a
                     share (1 - P_MAIN_WORD)^TITLE_WORDS) leaves only the price level as a hint.
  item_categories    the item's main category, and its related category with probability ``a``,
                     drawn per impression (as ``interests`` is: memorising one item's draw cannot
                     beat the oracle); a sorted list of category ids. ``oracle_item_categories``
                     holds the inclusion probabilities: 1 at the main category, ``a`` at the related
                     one, 0 elsewhere.

Randomness
  Everything here draws from its own stream (``application_rng(seed)``), after the world and the
  logs are drawn: the columns ``simulate`` writes without ``applications`` stay bit-identical, and
  the application columns of the same seed are the same whichever other columns are asked for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

APPLICATION_STREAM = 3  # spawn key of the stream (shop_days spawns 0, 1 and 2 from the same seed)
SENSITIVITY_LABEL_NOISE = 0.2  # sd of a price test's measurement of a user's sensitivity
RELATED_CONCENTRATION = 0.3  # Dirichlet over the other categories: low = few related categories each
AFFINITY = (0.5, 0.75)  # Beta(a, b) of P(an item is listed in its related category); mean 0.4
TITLE_WORDS = 5  # words after the brand token
WORDS_PER_CATEGORY, GENERIC_WORDS = 8, 40
P_MAIN_WORD, P_RELATED_WORD = 0.5, 0.4  # the latter times the item's affinity


def application_rng(seed: int) -> np.random.Generator:
    """The stream of the application columns of the simulator seeded with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(APPLICATION_STREAM,)))


class ShopApplications:
    """The application stream of one shop and what it draws once: the categories' related
    categories. ``items`` draws the per-item latents of new items, ``columns`` the per-row columns."""

    def __init__(self, seed: int, categories: int) -> None:
        self.rng = application_rng(seed)
        weights = self.rng.gamma(RELATED_CONCENTRATION, 1.0, (categories, categories)) + 1e-12
        np.fill_diagonal(weights, 0.0)
        self.related = weights / weights.sum(axis=1, keepdims=True)  # [C, C] P(related | main)

    def items(self, category: np.ndarray) -> dict[str, np.ndarray]:
        """Related category, affinity and title words ([n] and [n, TITLE_WORDS]) of items of these
        categories."""
        n, categories = category.size, self.related.shape[0]
        cdf = np.cumsum(self.related[category], axis=1)  # [n, C]
        other = np.minimum((cdf < self.rng.random(n)[:, None]).sum(axis=1), categories - 1)
        affinity = self.rng.beta(*AFFINITY, n)
        u = self.rng.random((n, TITLE_WORDS))
        word = self.rng.integers(0, WORDS_PER_CATEGORY, (n, TITLE_WORDS))
        generic = self.rng.integers(0, GENERIC_WORDS, (n, TITLE_WORDS))
        main = u < P_MAIN_WORD
        of_category = main | (u < P_MAIN_WORD + P_RELATED_WORD * affinity[:, None])
        owner = np.where(main, category[:, None], other[:, None])
        # one vocabulary: the words of category c are c * WORDS_PER_CATEGORY + w, then the generic ones
        words = np.where(of_category, owner * WORDS_PER_CATEGORY + word, categories * WORDS_PER_CATEGORY + generic)
        return {"related": other, "affinity": affinity, "title_words": words}

    def columns(self, sensitivity: np.ndarray, item: dict, i: np.ndarray) -> dict[str, np.ndarray | pa.Array]:
        """The rows' application columns and their oracles: ``sensitivity`` [rows] (each row's
        user's latent), ``item`` with ``category``, ``brand`` and the keys of ``items`` per item,
        ``i`` [rows] the item of each row."""
        from mtlrec.data.synthetic import ORACLE_PREFIX, _fixed_lists, _lists

        rows, categories = i.size, self.related.shape[0]
        main, other, affinity = item["category"][i], item["related"][i], item["affinity"][i]
        measured = sensitivity + self.rng.normal(0.0, SENSITIVITY_LABEL_NOISE, rows)
        listed = self.rng.random(rows) < affinity  # [rows] in the related category too
        pair = np.stack([np.minimum(main, other), np.maximum(main, other)], axis=1)  # [rows, 2] sorted
        values = np.where(listed[:, None], pair, np.stack([main, np.full(rows, -1)], axis=1)).ravel()
        inclusion = np.zeros((rows, categories), np.float32)
        inclusion[np.arange(rows), other] = affinity
        inclusion[np.arange(rows), main] = 1.0
        return {
            "title": _title_text(item["brand"][i], item["title_words"][i], categories),
            "price_sensitivity": measured,
            "item_categories": _lists(np.concatenate([[0], np.cumsum(1 + listed)]), values[values >= 0]),
            ORACLE_PREFIX + "price_sensitivity": sensitivity.astype(np.float64),
            ORACLE_PREFIX + "item_categories": _fixed_lists(inclusion),
        }


def _title_text(brand: np.ndarray, words: np.ndarray, categories: int) -> pa.Array:
    """[rows] titles: ``b<brand>`` and the words [rows, TITLE_WORDS] (ids as ``items`` makes them),
    space-separated."""
    vocab = pa.array([f"c{c}w{w}" for c in range(categories) for w in range(WORDS_PER_CATEGORY)]
                     + [f"w{g}" for g in range(GENERIC_WORDS)])  # fmt: skip
    parts = [pc.binary_join_element_wise("b", pc.cast(pa.array(brand), pa.string()), "")]
    parts += [pc.take(vocab, pa.array(words[:, j])) for j in range(TITLE_WORDS)]
    return pc.binary_join_element_wise(*parts, " ")
