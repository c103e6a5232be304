"""The simulator's application columns (``applications=True``): the existing columns stay
bit-identical (against digests taken before the columns existed), shapes and ranges, the labels
drawn from their oracles, titles written from the item's categories, the same columns over days,
`mtlrec simulate --applications`, and the two application configs training end to end."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.cli.main import main
from mtlrec.config import load_config
from mtlrec.data.readers import read_table
from mtlrec.data.shop_days import simulate_days
from mtlrec.data.shop_labels import P_MAIN_WORD, SENSITIVITY_LABEL_NOISE, TITLE_WORDS
from mtlrec.data.synthetic import ORACLE_PREFIX, simulate

NEW = ("title", "price_sensitivity", "item_categories", ORACLE_PREFIX + "price_sensitivity",
       ORACLE_PREFIX + "item_categories")  # fmt: skip
ROWS, C = 30_000, 12
SMALL = {"rows": 20_005, "users": 3_000, "items": 1_000, "categories": C, "correlation": 0.2, "seed": 5}
DAYS = {"days": 3, "rows": 5_000, "users": 2_000, "items": 800, "seed": 4}
# sha256 of `digest(...)` of these tables, computed on main before the application columns existed
DEFAULT_DIGEST = "7e0dfcac0f89f878a45cda40dcb87e77995989722eb9acd6e4efbe60d9e3ee30"
SMALL_DIGEST = "5f8574f5001d8de50d497a4b5b1bcc0292b2193d31678d8ec7a72c4aee1d937e"
DAY_DIGESTS = (
    "6f33ae566437a9bc741d41855fef33d9f64c1378245750f616f145003d76feaa",
    "01d31e78112d71c259be299f38c2061c75adae67597861165b19e44f1356a247",
    "4fa3fd20643621091302ea2df534033ba8756a47d036129931283e74ede4a92c",
)


def digest(table: pa.Table) -> str:
    """SHA-256 of every column's name, type, nulls and values (list offsets and flattened values)."""
    h = hashlib.sha256()
    for name in table.column_names:
        col = table[name].combine_chunks()
        h.update(f"{name}:{col.type}:{len(col)}:{col.null_count}".encode())
        if pa.types.is_list(col.type):
            h.update(np.asarray(col.offsets).tobytes())
            col = col.flatten()
        elif pa.types.is_fixed_size_list(col.type):
            col = col.flatten()
        if pa.types.is_string(col.type):
            h.update("\n".join(col.to_pylist()).encode())
        else:
            h.update(col.to_numpy(zero_copy_only=False).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return simulate(rows=ROWS, users=4_000, items=2_000, categories=C, seed=3, applications=True)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def fixed(table: pa.Table, name: str) -> np.ndarray:
    values = table[name].combine_chunks()
    return values.flatten().to_numpy().reshape(len(values), -1)


def lists(table: pa.Table, name: str) -> list[list[int]]:
    return table[name].to_pylist()


def test_existing_columns_are_bit_identical_to_main():
    assert digest(simulate()) == DEFAULT_DIGEST  # the demo's table
    small = simulate(**SMALL)
    assert digest(small) == SMALL_DIGEST
    with_apps = simulate(**SMALL, applications=True)
    assert with_apps.column_names == small.column_names + list(NEW)
    assert with_apps.select(small.column_names).equals(small)
    plain = [d.table for d in simulate_days(**DAYS)]
    assert tuple(digest(t) for t in plain) == DAY_DIGESTS
    for day, apps in zip(plain, simulate_days(**DAYS, applications=True)):
        assert apps.table.select(day.column_names).equals(day)


def test_columns_types_and_ranges(table):
    types = dict(zip(table.column_names, table.schema.types))
    assert types["title"] == pa.string()
    assert types["price_sensitivity"] == types[ORACLE_PREFIX + "price_sensitivity"] == pa.float64()
    assert types["item_categories"] == pa.list_(pa.int32())
    assert types[ORACLE_PREFIX + "item_categories"] == pa.list_(pa.float32(), C)
    assert all(table[name].null_count == 0 for name in NEW)
    assert col(table, ORACLE_PREFIX + "price_sensitivity").min() >= 0  # the latent is clipped at 0
    category = col(table, "category")
    labels = lists(table, "item_categories")
    assert {len(x) for x in labels} == {1, 2}
    assert all(x == sorted(set(x)) and c in x and 0 <= min(x) and max(x) < C for x, c in zip(labels, category))


def test_oracle_of_item_categories(table):
    probs = fixed(table, ORACLE_PREFIX + "item_categories").astype(np.float64)
    rows = np.arange(ROWS)
    category = col(table, "category")
    np.testing.assert_array_equal(probs[rows, category], 1.0)  # the main category, always
    others = probs.copy()
    others[rows, category] = 0.0
    assert np.all((others >= 0) & (others < 1)) and np.all((others > 0).sum(axis=1) == 1)  # one related
    chosen = np.zeros_like(probs, dtype=bool)
    labels = table["item_categories"].combine_chunks()
    chosen[np.repeat(rows, labels.value_lengths().to_numpy()), labels.flatten().to_numpy()] = True
    # drawn per row: the related category's inclusion rate matches its probability, overall and
    # within a low and a high band of affinity
    affinity = others.max(axis=1)
    related = others.argmax(axis=1)
    for band in (affinity < 0.3, affinity > 0.7, np.ones(ROWS, bool)):
        got, p = chosen[rows, related][band], affinity[band]
        assert abs(got.sum() - p.sum()) < 4 * np.sqrt(np.sum(p * (1 - p)))
    assert not np.any(chosen & (probs == 0))


def test_item_level_latents_are_constant_per_item(table):
    item = col(table, "item_id")
    first, back = np.unique(item, return_index=True, return_inverse=True)[1:]
    titles = col(table, "title")
    assert np.array_equal(titles, titles[first][back])
    probs = fixed(table, ORACLE_PREFIX + "item_categories")
    np.testing.assert_array_equal(probs, probs[first][back])
    labels = lists(table, "item_categories")
    assert any(len(labels[r]) != len(labels[first[back[r]]]) for r in range(ROWS))  # drawn per row


def test_titles_are_written_from_the_item_s_brand_and_categories(table):
    probs = fixed(table, ORACLE_PREFIX + "item_categories")
    main_words = 0
    item = col(table, "item_id")
    first = np.unique(item, return_index=True)[1]
    for r in first:
        tokens = table["title"][int(r)].as_py().split(" ")
        assert len(tokens) == TITLE_WORDS + 1 and tokens[0] == f"b{table['brand'][int(r)].as_py()}"
        for token in tokens[1:]:
            word = re.fullmatch(r"c(\d+)w\d+|w\d+", token)
            assert word is not None, token
            if word.group(1) is not None:
                assert probs[r, int(word.group(1))] > 0, (token, probs[r])  # the main or the related one
                main_words += int(word.group(1)) == table["category"][int(r)].as_py()
    share = main_words / (len(first) * TITLE_WORDS)
    assert abs(share - P_MAIN_WORD) < 4 * np.sqrt(P_MAIN_WORD * (1 - P_MAIN_WORD) / (len(first) * TITLE_WORDS))


def test_price_sensitivity_label_and_its_latent(table):
    latent, label = col(table, ORACLE_PREFIX + "price_sensitivity"), col(table, "price_sensitivity")
    noise = label - latent
    assert abs(noise.mean()) < 4 * SENSITIVITY_LABEL_NOISE / np.sqrt(ROWS)
    assert abs(noise.std() / SENSITIVITY_LABEL_NOISE - 1) < 0.03
    user = col(table, "user_id")
    first, back = np.unique(user, return_index=True, return_inverse=True)[1:]
    np.testing.assert_array_equal(latent, latent[first][back])  # one latent per user
    assert np.any(label != label[first][back])  # measured per row
    # the latent is what drives the funnel's price response: the purchase odds of a clicked item
    # fall with (price above the reference) x sensitivity, and the observed proxy tracks it
    click = col(table, "click") == 1
    p = col(table, ORACLE_PREFIX + "purchase")[click]
    penalty = (latent * (np.log(col(table, "price")) - np.log(30.0)))[click]
    assert np.corrcoef(penalty, np.log(p / (1 - p)))[0, 1] < -0.2
    assert np.corrcoef(latent[first], np.log(col(table, "user_price_pref")[first]))[0, 1] < -0.9


def test_days_carry_the_application_columns_and_new_items_get_titles():
    days = list(simulate_days(**DAYS, churn=0.2, applications=True))
    titles: dict[int, str] = {}
    for day in days:
        t = day.table
        assert set(NEW) <= set(t.column_names)
        for item, title in zip(col(t, "item_id"), col(t, "title")):
            assert titles.setdefault(int(item), title) == title  # an item keeps its title over days
    new_items = [i for i in titles if i >= DAYS["items"]]
    assert new_items, "no item listed after day 1 was shown"


def test_simulate_cli_writes_the_application_columns(tmp_path):
    out = tmp_path / "shop.csv"
    main(["simulate", "--out", str(out), "--rows", "2000", "--users", "300", "--items", "200", "--applications"])
    back = read_table(out)
    assert set(NEW) <= set(back.column_names)
    main(["simulate", "--out", str(tmp_path / "plain.parquet"), "--rows", "2000", "--users", "300", "--items", "200"])
    assert not set(NEW) & set(read_table(tmp_path / "plain.parquet").column_names)
    main(["simulate", "--out", str(tmp_path / "days"), "--days", "2", "--rows", "1000", "--users", "300",
          "--items", "200", "--applications"])  # fmt: skip
    for day in ("day-01.parquet", "day-02.parquet"):
        assert set(NEW) <= set(read_table(tmp_path / "days" / day).column_names)


@pytest.mark.parametrize("config", ["configs/price_sensitivity.yaml", "configs/item_categories.yaml"])
def test_application_configs_train_with_their_oracle(config, tmp_path):
    from mtlrec.experiment import run_experiment

    tiny = ["data.synthetic.rows=3000", "data.synthetic.users=500", "data.synthetic.items=300",
            "train.epochs=1", "train.progress=false"]  # fmt: skip
    cfg = load_config(config, tiny)
    assert cfg.data.synthetic.applications
    metrics = run_experiment(cfg, tmp_path / "run")
    tasks = {t.name for t in cfg.schema_.tasks}
    assert tasks & {"price_sensitivity", "item_categories"}
    assert set(metrics["test"]) == set(metrics["oracle"]["test"]) == tasks
