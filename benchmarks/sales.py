"""Sales forecasting measured: units (Poisson) and revenue per item per day, shared against single-task
and against naive forecasts, next to the oracle.

    python benchmarks/sales.py                                   # 42 days, 2,000 items, 3 seeds
    python benchmarks/sales.py --models shared_bottom,mmoe --weightings static,uncertainty
    python benchmarks/sales.py --set 'model.task_paths=[revenue]' --out runs/bench-sales-paths

Simulates one shop over ``--days`` days (``mtlrec simulate --days N --sales-out``: 100,000
impressions a day), builds the item x day table (mtlrec.data.sales) and trains configs/sales.yaml
(time split: the last 7 days are the test split) for the single-task baseline and each model x
weighting over ``--seeds`` seeds. It prints each forecast's test metrics: the models' (mean ± std
over the seeds), the naive forecasts' (last week's same day, yesterday, the last 7 days' mean; revenue
forecast as price x units, which is what revenue is in the simulator), and the oracle's (the
expected units given each day's impressions). The last column forecasts revenue as price x the
units forecast, for every row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from _machine import cpu_line
from mtlrec.cli.table import markdown
from mtlrec.progress import Progress
from mtlrec.compare import check_names, grid, run_grid
from mtlrec.config import load_config
from mtlrec.data.readers import write_table
from mtlrec.data.sales import sales_table
from mtlrec.data.shop_days import simulate_days
from mtlrec.experiment import prepare
from mtlrec.metrics import task_metrics
from mtlrec.serve.predictor import Predictor

COLUMNS = (("units", "poisson_deviance"), ("units", "wape"), ("units", "rmse"), ("revenue", "rmse"), ("revenue", "wape"))
NAIVE = {  # name -> the units it forecasts from a row's lags
    "naive: last week's same day": lambda t: col(t, "units_lag7"),
    "naive: yesterday": lambda t: col(t, "units_lag1"),
    "naive: mean of the last 7 days": lambda t: col(t, "units_7d") / 7.0,
}


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False).astype(np.float64)


def metrics(units: np.ndarray, revenue: np.ndarray, test: pa.Table) -> list[float]:
    """COLUMNS' metrics of these forecasts, then revenue's WAPE if forecast as price x units."""
    forecast = {"units": units, "revenue": revenue}
    values = [task_metrics("regression", [m], col(test, task), forecast[task])[m] for task, m in COLUMNS]
    return values + [task_metrics("regression", ["wape"], col(test, "revenue"), col(test, "price") * units)["wape"]]


def naive_row(name: str, units: np.ndarray, test: pa.Table) -> list[str]:
    """A naive forecast's metrics: units as given, revenue as price x units."""
    return [name, *(f"{v:.4f}" for v in metrics(units, col(test, "price") * units, test))]


def model_row(name: str, runs: list[Path], test: pa.Table) -> list[str]:
    """Mean ± std over the runs of each metric on ``test`` (the runs' own test split)."""
    per_run = []
    for run in runs:
        preds = Predictor.load(run).predict(test)
        per_run.append(metrics(preds["units"], preds["revenue"], test))
    cells = []
    for values in zip(*per_run):
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        cells.append(f"{statistics.fmean(values):.4f}{spread}")
    return [name, *cells]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sales.yaml")
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--rows", type=int, default=100_000, help="impressions per day")
    parser.add_argument("--seed", type=int, default=0, help="the simulator's seed")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model")
    parser.add_argument("--models", default="shared_bottom")
    parser.add_argument("--weightings", default="static")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    parser.add_argument("--out", default="runs/bench-sales")
    args = parser.parse_args(argv)
    models, weightings = args.models.split(","), args.weightings.split(",")
    check_names(models, weightings)

    start, out = time.perf_counter(), Path(args.out)
    path = out / f"sales-{args.days}d-{args.items}i-{args.rows}r-s{args.seed}.parquet"
    if not path.is_file():
        log(f"simulating {args.days} days of {args.rows:,} impressions, {args.items:,} items ...")
        write_table(sales_table(simulate_days(days=args.days, rows=args.rows, items=args.items, seed=args.seed)), path)
    last_week = [f"data.split.valid_from={args.days - 13}", f"data.split.test_from={args.days - 6}"]  # test: the last 7 days
    cfg = load_config(args.config, [f"data.path={path}", "train.progress=false", *last_week, *args.overrides])
    data = prepare(cfg)
    test = data.tables["test"]
    _, results = run_grid(cfg, grid(models, weightings), args.seeds, out / "runs", progress=Progress.auto(), data=data)

    rows = [naive_row("oracle (expected units given the day's impressions)", col(test, "oracle_units"), test)]
    rows += [naive_row(name, forecast(test), test) for name, forecast in NAIVE.items()]
    for model, weighting in results:
        runs = [out / "runs" / f"{model}-{weighting}" / f"seed{cfg.train.seed + k}" for k in range(args.seeds)]
        rows.append(model_row(f"{model} + {weighting}" if model != "single_task" else model, runs, test))
    days = sorted(set(col(test, "day").astype(int)))
    minutes = (time.perf_counter() - start) / 60
    print(f"{cpu_line()}\n")
    print(f"{args.days} days x {args.rows:,} impressions, {args.items:,} items, simulator seed {args.seed}; "
          f"{args.config} {' '.join(args.overrides)}; {data.tables['train'].num_rows:,} train rows; test: days "
          f"{days[0]}-{days[-1]} ({test.num_rows:,} item-days); {args.seeds} training seed(s); {minutes:.1f} min\n")  # fmt: skip
    print(markdown(["forecast", *(f"{t} {m}" for t, m in COLUMNS), "revenue wape as price x units"], rows))


if __name__ == "__main__":
    main()
