"""Metrics over a streamed split: exact (every score held) against folded in bounded memory
(``train.exact_metric_rows`` exceeded: AUC binned, the rest exact; metrics/bounded.py).

    python benchmarks/bounded_metrics.py                   # 4M rows evaluated, MMoE trained on 500k
    python benchmarks/bounded_metrics.py --rows 1000000    # a quick look

1. ``mtlrec simulate``: ROWS impressions to evaluate, TRAIN others to train on (Parquet parts).
2. MMoE (configs/streaming.yaml) trained for one epoch on the TRAIN rows.
3. ``evaluate`` of the model over all ROWS rows (every split: the files as one data set), in two
   child processes: every score held (exact), and folded from the first row (exact_metric_rows 0).
   Printed: each task's AUC, GAUC, logloss, calibration or RMSE both ways and their difference, the AUC bound the folded run
   logged, and each process's peak resident memory (getrusage) and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _machine import cpu_line
from streaming import simulate, train

from mtlrec.cli.table import markdown

SHOWN = ("auc", "gauc", "logloss", "calibration", "rmse")  # the rest are sums, exact like logloss
CHILD = r"""
import json, logging, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
from mtlrec.evaluation import evaluate_files
from mtlrec.serve.predictor import Predictor
logging.basicConfig(level=logging.WARNING, format="%(message)s")
p = Predictor.load(sys.argv[1])
start = time.perf_counter()
r = evaluate_files(p.model, p.encoder, sys.argv[2], p.config.train.eval_batch_size, int(sys.argv[3]))
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - start, "metrics": r}))
"""


def evaluate(run: Path, data: Path, exact_rows: int, threads: int) -> tuple[dict, str]:
    args = [sys.executable, "-c", CHILD, str(run), str(data), str(exact_rows), str(threads)]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/streaming.yaml")
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--train", type=int, default=500_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-bounded")
    args = parser.parse_args(argv)
    out = Path(args.out)
    load = os.getloadavg()[0]
    simulate(args.train, out / "train")
    simulate(args.rows, out / "eval")
    train(args.config, [f"train.threads={args.threads}", f"data.path={out / 'train'}"], out / "run")
    exact, _ = evaluate(out / "run", out / "eval", 10**15, args.threads)
    folded, log = evaluate(out / "run", out / "eval", 0, args.threads)

    print(f"{cpu_line()}; load average {load:.2f} before\n")
    print(f"{args.rows:,} impressions evaluated ({args.config}, MMoE trained one epoch on {args.train:,} others):\n")
    rows = []
    for which in ("data", "oracle"):
        for task, metrics in exact["metrics"][which].items():
            for name, value in metrics.items():
                if name not in SHOWN:
                    continue
                got = folded["metrics"][which][task][name]
                rows.append([task if which == "data" else f"{task} (oracle)", name, f"{value:.6f}", f"{got:.6f}",
                             f"{abs(got - value):.1e}"])  # fmt: skip
    print(markdown(["task", "metric", "exact", "folded", "|difference|"], rows))
    print(f"\nfolded run's log: {log.splitlines()[-1] if log else '(nothing)'}\n")
    print(markdown(["metrics", "peak RSS MB", "seconds"],
                   [[name, f"{r['rss_mb']:,.0f}", f"{r['seconds']:.0f}"] for name, r in (("exact", exact), ("folded", folded))]))  # fmt: skip


if __name__ == "__main__":
    main()
