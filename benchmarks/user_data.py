"""Data as users have it, measured: the simulated shop written the way a shop keeps it, trained
from that form and from the hand-made one, with every test metric side by side.

    python benchmarks/user_data.py --out runs/user_data --rows 50000   # docs/user_data.md's table
    python benchmarks/user_data.py --out runs/user_data --rows 20000 --set train.epochs=2   # a quick look

It writes into ``--out``:
  log.parquet    the impressions without the item and user attributes (ids, context, labels); the
                 labels as values: user_segment by name (bargain_hunter, ...), interests as
                 '|'-joined category names (cat00|cat07), no class indices
  items.parquet  one row per item_id: category, brand, price, item_rating
  users.csv      one row per user_id: user_price_pref, user_activity
  user_data.yaml the config: data.join names the two side tables, no n_classes anywhere
  hand.parquet   the same rows joined by hand with class indices (the simulator's own form)
and trains ``user_data.yaml`` (-> OUT/values) and the same config on hand.parquet with the
simulator's schema (-> OUT/indices). Their test metrics must be equal, digit for digit: it prints
each task's first test metric of both, and whether all of them are equal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from mtlrec.cli.main import main
from mtlrec.cli.table import markdown
from mtlrec.data.synthetic import SEGMENTS, default_schema, simulate

ITEM = ["category", "brand", "price", "item_rating"]
USER = ["user_price_pref", "user_activity"]


def side_table(table: pa.Table, key: str, columns: list[str]) -> pa.Table:
    """One row per ``key``: its first row's ``columns``."""
    _, first = np.unique(table[key].to_numpy(), return_index=True)
    return table.select([key, *columns]).take(pa.array(np.sort(first)))


def as_values(table: pa.Table) -> pa.Table:
    """user_segment by name, interests as '|'-joined category names."""
    segment = pa.array([SEGMENTS[k] for k in table["user_segment"].to_pylist()])
    interests = pa.array(["|".join(f"cat{k:02d}" for k in ks) for ks in table["interests"].to_pylist()])
    table = table.set_column(table.column_names.index("user_segment"), "user_segment", segment)
    return table.set_column(table.column_names.index("interests"), "interests", interests)


def write_example(out: Path, rows: int, seed: int) -> dict:
    """The files above, and the config (paths as seen from the working directory)."""
    out.mkdir(parents=True, exist_ok=True)
    shop = simulate(rows=rows, users=max(rows // 10, 10), items=max(rows // 20, 20), seed=seed)
    pq.write_table(shop, out / "hand.parquet")
    pq.write_table(side_table(shop, "item_id", ITEM), out / "items.parquet")
    pacsv.write_csv(side_table(shop, "user_id", USER), out / "users.csv")
    pq.write_table(as_values(shop.drop_columns(ITEM + USER)), out / "log.parquet")
    schema = dataclasses.asdict(default_schema())
    for t in schema["tasks"]:
        t["n_classes"] = None  # the train split's values are the classes
    schema["tasks"] = [{k: v for k, v in t.items() if v not in (None, (), [])} for t in schema["tasks"]]
    schema["features"] = [{k: v for k, v in f.items() if v is not None} for f in schema["features"]]
    config = {
        "data": {
            "source": "file",
            "path": str(out / "log.parquet"),
            "join": [{"path": str(out / "items.parquet"), "on": "item_id"},
                     {"path": str(out / "users.csv"), "on": "user_id"}],  # fmt: skip
        },
        "schema": schema,
        "train": {"progress": False},
    }
    (out / "user_data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/user_data"))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="config overrides for both runs")
    args = parser.parse_args(argv)
    write_example(args.out, args.rows, args.seed)
    sets = [x for s in args.set for x in ("--set", s)]
    config = str(args.out / "user_data.yaml")
    hand = ["--set", f"data.path={args.out / 'hand.parquet'}", "--set", "data.join=null",
            "--set", "schema.tasks=" + json.dumps([dataclasses.asdict(t) for t in default_schema().tasks])]  # fmt: skip
    for name, extra in (("values", []), ("indices", hand)):
        code = main(["train", config, "--out", str(args.out / name), "--overwrite", *sets, *extra])
        if code:
            return code
    got = {name: json.loads((args.out / name / "metrics.json").read_text())["test"] for name in ("values", "indices")}
    rows = []
    for task, metrics in got["indices"].items():  # each task's first metric (all of them are compared below)
        metric = next(iter(metrics))
        rows.append([task, metric, metrics[metric], got["values"][task][metric]])
    print(markdown(["task", "test metric", "hand-joined, class indices", "side tables, labels as values"], rows))
    same = got["values"] == got["indices"]
    print(f"\nequal in every digit: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main_())
