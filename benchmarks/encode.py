"""Encoder.transform rows/s on the benchmark shape: ids as integer columns (the integer index of
each vocabulary) against the same ids as text (Arrow's string lookup), in turns, medians.

    python benchmarks/encode.py --rows 400000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

import _shape  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-seq", type=int, default=1, help="sequence fields")
    args = parser.parse_args(argv)

    ints = _shape.generate(args.rows, n_seq=args.n_seq)
    text = ints
    for name in [*_shape.cat_names(), *(f"s{s}" for s in range(args.n_seq))]:
        col = ints[name]
        cast = pc.cast(col, pa.list_(pa.string()) if pa.types.is_list(col.type) else pa.string())
        text = text.set_column(text.column_names.index(name), name, cast)
    enc = _shape.encoder(ints, n_seq=args.n_seq)
    first = time.perf_counter()
    enc.transform(ints.slice(0, 10))  # builds each vocabulary's integer index (kept)
    build = time.perf_counter() - first
    seconds: dict[str, list[float]] = {"integer columns": [], "text columns": []}
    for _ in range(args.rounds):
        for label, table in (("integer columns", ints), ("text columns", text)):
            start = time.perf_counter()
            enc.transform(table)
            seconds[label].append(time.perf_counter() - start)
    print(f"Encoder.transform, {args.rows:,} rows (20 categorical fields, one of 1M ids, {args.n_seq} sequence), "
          f"{args.rounds} rounds; integer index built once in {build:.2f} s; "
          f"load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| input | seconds (median) | rows/s |")
    print("|---|---:|---:|")
    for label, s in seconds.items():
        med = statistics.median(s)
        print(f"| {label} | {med:.2f} | {args.rows / med:,.0f} |")


if __name__ == "__main__":
    main()
