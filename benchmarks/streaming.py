"""Streaming measured: peak memory and speed on 20M impressions, and streaming against the
in-memory path on 2M that fit in memory.

    python benchmarks/streaming.py                          # 20M rows (about 15 minutes)
    python benchmarks/streaming.py --rows 2000000 --subset 500000 --threads 2   # a quick look
    python benchmarks/streaming.py --rows 300000 --set data.prefetch=true      # read ahead in a thread

1. ``mtlrec simulate --rows ROWS --out DIR`` (Parquet parts of 1M rows, row groups of 65,536).
2. MMoE (configs/streaming.yaml) trained for one epoch from the stream, in a child process: its
   peak resident memory (getrusage: the OS's count, vocabularies and everything included),
   training samples/s and test AUC.
3. On SUBSET rows, written once as a directory and once as one file: the same config trained from
   the stream and in memory (the same rows in the same splits: split by the hash of request_id),
   side by side: samples/s (training epochs, validation included, as history.jsonl has them; the
   in-memory path encodes before its first epoch, outside that time), the ratio, peak memory, and
   each task's test AUC and its difference (the cost of the bounded shuffle buffer against a full
   in-memory shuffle).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from _machine import cpu_line
from mtlrec.cli.table import markdown

CHILD = r"""
import json, resource, sys, time
from mtlrec.config import load_config
from mtlrec.experiment import run_experiment
from mtlrec.artifacts import read_history
cfg = load_config(sys.argv[1], json.loads(sys.argv[2]))
start = time.perf_counter()
metrics = run_experiment(cfg, sys.argv[3], overwrite=True)
wall = time.perf_counter() - start
history = read_history(sys.argv[3])
print(json.dumps({
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": wall,
    "train_s": sum(r["seconds"] for r in history), "samples_per_s": sum(r["samples_per_s"] for r in history) / len(history),
    "auc": {t: m["auc"] for t, m in metrics["test"].items() if "auc" in m},
    "oracle": {t: m["auc"] for t, m in metrics.get("oracle", {}).get("test", {}).items() if "auc" in m},
}))
"""


def train(config: str, overrides: list[str], out: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, config, json.dumps(overrides), str(out)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def simulate(rows: int, out: Path) -> float:
    if out.is_dir() and sum(pq.ParquetFile(f).metadata.num_rows for f in out.glob("*.parquet")) == rows:
        return 0.0  # already there
    start = time.perf_counter()
    from mtlrec.cli.main import main

    if main(["simulate", "--rows", str(rows), "--out", str(out)]) != 0:
        raise SystemExit(f"simulate failed for {out}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/streaming.yaml")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--subset", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the side-by-side runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    parser.add_argument("--out", default="runs/bench-streaming")
    args = parser.parse_args(argv)
    out = Path(args.out)
    load = os.getloadavg()[0]
    common = [f"train.threads={args.threads}", *args.overrides]

    seconds = simulate(args.rows, out / "big")
    big = train(args.config, [*common, f"data.path={out / 'big'}", "train.epochs=1"], out / "run-big")
    simulate(args.subset, out / "subset")
    whole = out / "subset.parquet"
    if not whole.is_file():
        pq.write_table(ds.dataset(out / "subset").to_table(), whole, row_group_size=65_536)
    epochs = [*common, f"train.epochs={args.epochs}"]
    streamed = train(args.config, [*epochs, f"data.path={out / 'subset'}"], out / "run-stream")
    memory = train(args.config, [*epochs, f"data.path={whole}"], out / "run-memory")

    print(f"{cpu_line()}; load average {load:.2f} before\n")
    print(f"{args.rows:,} impressions from the stream ({args.config} {' '.join(args.overrides)}, MMoE, one epoch; "
          f"simulated in {seconds:.0f} s):\n")  # fmt: skip
    tasks = list(big["auc"])
    print(markdown(["rows", "peak RSS MB", "train samples/s", "wall s", *(f"{t} auc" for t in tasks)],
                   [[f"{args.rows:,}", f"{big['rss_mb']:,.0f}", f"{big['samples_per_s']:,.0f}", f"{big['wall_s']:.0f}",
                     *(f"{big['auc'][t]:.4f}" for t in tasks)]]))  # fmt: skip
    print(f"\n{args.subset:,} impressions, streamed and in memory, {args.epochs} epoch(s), the same rows in each split:\n")
    rows = []
    for name, r in (("stream", streamed), ("in memory", memory)):
        rows.append([name, f"{r['samples_per_s']:,.0f}", f"{r['rss_mb']:,.0f}", f"{r['wall_s']:.0f}",
                     *(f"{r['auc'][t]:.4f}" for t in tasks)])  # fmt: skip
    rows.append(["stream / in memory", f"{streamed['samples_per_s'] / memory['samples_per_s']:.2f}", "", "",
                 *(f"{streamed['auc'][t] - memory['auc'][t]:+.4f}" for t in tasks)])  # fmt: skip
    rows.append(["oracle", "", "", "", *(f"{memory['oracle'][t]:.4f}" for t in tasks)])
    print(markdown(["path", "train samples/s", "peak RSS MB", "wall s", *(f"{t} auc" for t in tasks)], rows))


if __name__ == "__main__":
    main()
