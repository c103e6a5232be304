"""Time the built-in shop simulator and print its default-world numbers as markdown.

    python benchmarks/simulate.py                  # 1,000,000 rows
    python benchmarks/simulate.py --rows 200000 --users 1000000

Prints rows, seconds, rows/s and peak RSS, then the label rates and the oracle AUCs (the best any
model can reach) of click, and of add_to_cart and purchase on clicked rows.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from mtlrec.data.synthetic import ORACLE_PREFIX, simulate
from mtlrec.metrics import auc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--correlation", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    table = simulate(
        rows=args.rows, users=args.users, items=args.items, correlation=args.correlation, seed=args.seed
    )
    seconds = time.perf_counter() - start
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)

    print(f"simulate(rows={args.rows:,}, users={args.users:,}, items={args.items:,}, "
          f"correlation={args.correlation}, seed={args.seed})\n")  # fmt: skip
    print("| rows | seconds | rows/s | peak RSS MB |")
    print("|---:|---:|---:|---:|")
    print(f"| {table.num_rows:,} | {seconds:.2f} | {table.num_rows / seconds:,.0f} | {peak_mb:,.0f} |\n")

    click = table["click"].to_numpy() == 1
    print("| task | sample space | positive rate | oracle AUC |")
    print("|---|---|---:|---:|")
    for task, rows, space in (("click", slice(None), "all rows"),
                              ("add_to_cart", click, "clicked rows"),
                              ("purchase", click, "clicked rows")):  # fmt: skip
        y = table[task].to_numpy()[rows]
        oracle = table[ORACLE_PREFIX + task].to_numpy()[rows]
        print(f"| {task} | {space} | {y.mean():.4f} | {auc(y, oracle):.4f} |")
    value = table["order_value"].to_numpy()[table["purchase"].to_numpy() == 1]
    print(f"\nmean order value of purchases: {np.mean(value):.2f}")


if __name__ == "__main__":
    main()
