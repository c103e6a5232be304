"""The item x day sales table: every column against a row-by-row reference over the day logs, no lag
reading its own day or later (a change on day d moves exactly the lags that should see it), the
oracle's expected units against what sold, errors, and `mtlrec simulate --days N --sales-out`."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.cli.main import main
from mtlrec.data.readers import read_table
from mtlrec.data.sales import HISTORY, SalesDays, sales_table
from mtlrec.data.shop_days import simulate_days
from mtlrec.errors import DataError

WORLD = {"rows": 20_000, "users": 2_000, "items": 300, "seed": 3}
DAYS = 17
LAGS = ("units_lag1", "clicks_lag1", "views_lag1", "units_7d", "clicks_7d", "views_7d", "units_lag7", "listed_7d")


@pytest.fixture(scope="module")
def days() -> list:
    return list(simulate_days(days=DAYS, **WORLD))


@pytest.fixture(scope="module")
def table(days) -> pa.Table:
    return sales_table(days)


def rows_of(table: pa.Table) -> dict[tuple[int, int], dict]:
    return {(r["day"], r["item_id"]): r for r in table.to_pylist()}


def reference(days) -> dict[tuple[int, int], dict]:
    """Each (day, item) row computed one impression and one day at a time."""
    sold = defaultdict(lambda: defaultdict(float))  # (day, item) -> {units, revenue, clicks, views, oracle}
    listed = {d.day: set(d.catalogue["item_id"].to_pylist()) for d in days}
    for d in days:
        for r in d.table.select(["item_id", "click", "order_value", "price", "oracle_click", "oracle_purchase",
                                 "oracle_order_value"]).to_pylist():  # fmt: skip
            s = sold[d.day, r["item_id"]]
            s["units"] += round(r["order_value"] / r["price"])
            s["revenue"] += r["order_value"]
            s["clicks"] += r["click"]
            s["views"] += 1
            s["oracle"] += r["oracle_click"] * r["oracle_purchase"] * r["oracle_order_value"] / r["price"]
    out = {}
    for d in days[HISTORY:]:
        for item in d.catalogue.to_pylist():
            i, day = item["item_id"], d.day
            past = range(day - HISTORY, day)
            row = dict(item, day=day, units=sold[day, i]["units"], revenue=sold[day, i]["revenue"],
                       units_lag7=sold[day - HISTORY, i]["units"], listed_7d=sum(i in listed[k] for k in past),
                       oracle_units=sold[day, i]["oracle"], oracle_revenue=item["price"] * sold[day, i]["oracle"])  # fmt: skip
            for name in ("units", "clicks", "views"):
                row[f"{name}_lag1"] = sold[day - 1, i][name]
                row[f"{name}_7d"] = sum(sold[k, i][name] for k in past)
            out[day, i] = row
    return out


def test_every_column_equals_a_row_by_row_reference(days, table):
    got, want = rows_of(table), reference(days)
    assert table.num_rows == len(got) == len(want)  # one row per item on sale per day, from day 8
    assert set(got) == set(want)
    assert sorted({day for day, _ in got}) == list(range(HISTORY + 1, DAYS + 1))
    for key, w in want.items():
        g = got[key]
        assert set(g) == set(w), key
        for name, value in w.items():
            if value is None:  # a missing rating stays missing
                assert g[name] is None, (key, name)
            else:
                assert g[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, name)
    units = table["units"].to_numpy()
    assert units.sum() > 1000 and (units == 0).any() and (table["units_lag1"].to_numpy() > 0).any()
    new = table.filter(pa.compute.less(table["listed_7d"], HISTORY))  # items listed in the last week
    assert new.num_rows > 0 and (new["views_7d"].to_numpy() <= table["views_7d"].to_numpy().mean()).mean() > 0.5


def test_the_oracle_expects_what_sold(table):
    """Over every item-day, units sold and the oracle's expected units agree to their noise."""
    units, oracle = table["units"].to_numpy().sum(), table["oracle_units"].to_numpy().sum()
    assert units == pytest.approx(oracle, rel=0.05)
    revenue, expected = table["revenue"].to_numpy().sum(), table["oracle_revenue"].to_numpy().sum()
    assert revenue == pytest.approx(expected, rel=0.05)


def changed_day(day, item: int, units: int):
    """``day`` where ``item`` sold ``units`` more (on one of its impressions, now clicked) and was
    shown once more (a copy of that impression, not clicked)."""
    t = day.table
    i = t["item_id"].to_pylist().index(item)
    order_value, click = t["order_value"].to_numpy().copy(), t["click"].to_numpy().copy()
    was_clicked = int(click[i])
    order_value[i] += units * t["price"][i].as_py()
    click[i] = 1
    t = t.set_column(t.schema.get_field_index("order_value"), "order_value", pa.array(order_value))
    t = t.set_column(t.schema.get_field_index("click"), "click", pa.array(click))
    copy = t.slice(i, 1)
    copy = copy.set_column(copy.schema.get_field_index("click"), "click", pa.array(np.zeros(1, np.int8)))
    copy = copy.set_column(copy.schema.get_field_index("order_value"), "order_value", pa.array([0.0]))
    return dataclasses.replace(day, table=pa.concat_tables([t, copy])), 1 - was_clicked


@pytest.mark.parametrize("d", [HISTORY + 2, HISTORY + 1, 3])
def test_no_lag_reads_its_own_day_or_later(days, table, d):
    """Day d's units (+5), clicks and views change for one item: rows of days <= d keep every lag;
    day d's own row changes only in its targets; days d+1 .. d+7 see the change in exactly the lags
    whose window holds day d; day d+8 sees nothing."""
    item = days[d - 1].catalogue["item_id"][0].as_py()
    assert item in days[d - 1].table["item_id"].to_pylist()
    day, more_clicks = changed_day(days[d - 1], item, 5)
    changed = rows_of(sales_table([*days[: d - 1], day, *days[d:]]))
    before = rows_of(table)
    assert set(changed) == set(before)
    for (k, i), row in changed.items():
        old = before[k, i]
        delta = {name: row[name] - old[name] for name in LAGS + ("units",)}
        if i != item or k < d or k > d + HISTORY:
            assert all(v == 0 for v in delta.values()), (k, i, delta)
            continue
        want = dict.fromkeys(LAGS + ("units",), 0)
        if k == d:
            want["units"] = 5
        else:
            want.update(units_7d=5, clicks_7d=more_clicks, views_7d=1)
            if k == d + 1:
                want.update(units_lag1=5, clicks_lag1=more_clicks, views_lag1=1)
            if k == d + HISTORY:
                want["units_lag7"] = 5
        assert delta == pytest.approx(want), (k, delta)
    assert any(k > d for k, i in changed if i == item)  # the change was seen at all


def test_days_must_come_in_order_with_a_catalogue_and_integer_ids(days):
    builder = SalesDays()
    builder.add(days[0])
    with pytest.raises(ValueError, match="day 3 after day 1; expected day 2"):
        builder.add(days[2])
    with pytest.raises(ValueError, match="day 2 has no catalogue"):
        builder.add(dataclasses.replace(days[1], catalogue=None))
    text_ids = days[1].table.set_column(0, "request_id", days[1].table["request_id"])
    text_ids = text_ids.set_column(text_ids.schema.get_field_index("item_id"), "item_id",
                                   pa.array([f"i{v}" for v in text_ids["item_id"].to_pylist()]))  # fmt: skip
    with pytest.raises(DataError, match="column 'item_id' in day 2's impressions: expected integer ids"):
        builder.add(dataclasses.replace(days[1], table=text_ids))
    with pytest.raises(DataError, match="day 2's impressions: missing column"):
        builder.add(dataclasses.replace(days[1], table=days[1].table.drop_columns(["order_value"])))
    with pytest.raises(ValueError, match=f"needs more than {HISTORY} days"):
        sales_table(days[:HISTORY])


def test_the_cli_writes_the_table_beside_the_day_logs(tmp_path, capsys):
    args = ["simulate", "--days", "9", "--rows", "3000", "--users", "500", "--items", "100", "--seed", "2"]
    assert main([*args, "--out", str(tmp_path / "days"), "--sales-out", str(tmp_path / "sales.parquet")]) == 0
    assert "wrote 200 item-days (days 8-9)" in capsys.readouterr().out
    want = sales_table(simulate_days(days=9, rows=3000, users=500, items=100, seed=2))
    assert read_table(tmp_path / "sales.parquet").equals(want)
    assert len(list((tmp_path / "days").glob("day-*.parquet"))) == 9
    for bad, message in [
        (["--days", "7"], "--sales-out: needs --days > 7"),
        (["--days", "9", "--sales-out", str(tmp_path / "s.json")], "expected a .parquet or .csv file"),
        ([], "--sales-out applies only with --days"),
    ]:
        out = ["--out", str(tmp_path / ("x" if bad else "x.parquet"))]
        rest = bad if "--sales-out" in bad else [*bad, "--sales-out", str(tmp_path / "s.parquet")]
        assert main(["simulate", "--rows", "100", "--users", "50", "--items", "30", *out, *rest]) == 2
        assert message in capsys.readouterr().err


def test_configs_sales_yaml_trains_on_the_table(tmp_path, capsys):
    """configs/sales.yaml as shipped (its data path, epochs and days overridden): units with loss
    poisson and revenue, metrics next to the oracle, split by day (the test split: the last day)."""
    import json
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "configs" / "sales.yaml"
    sales = tmp_path / "sales.parquet"
    assert main(["simulate", "--days", "12", "--rows", "4000", "--users", "500", "--items", "100", "--seed", "1",
                 "--out", str(tmp_path / "days"), "--sales-out", str(sales)]) == 0  # fmt: skip
    args = ["train", str(config), "--set", f"data.path={sales}", "--set", "train.epochs=2", "--out", str(tmp_path / "run"),
            "--set", "data.split.valid_from=11", "--set", "data.split.test_from=12"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["monitor"] == "units.poisson_deviance"
    for name in ("test", "oracle"):
        got = metrics[name]["test"] if name == "oracle" else metrics["test"]
        assert set(got["units"]) == {"poisson_deviance", "wape", "rmse", "mae"} and set(got["revenue"]) == {"rmse", "wape", "mae"}
    assert metrics["oracle"]["test"]["units"]["poisson_deviance"] < metrics["test"]["units"]["poisson_deviance"]
    assert "units" in capsys.readouterr().out
