"""The daily loop measured: a shop that changes, replayed day by day under three training policies.

    python benchmarks/continual.py                                  # 7 days of 100k impressions, drift 0.1
    python benchmarks/continual.py --days 4 --rows 20000 --set train.epochs=2   # a quick look
    python benchmarks/continual.py --without item_id                # no item ids

``mtlrec simulate --days`` logs one shop over ``--days`` days (new items and brands, drifting tastes
and prices). Day 1 trains from scratch (configs/continual.yaml). On each later day d, three policies
train on what they may see and are tested on day d+1's logs:

  frozen   day 1's model, never retrained
  warm     yesterday's warm run (day 1's on day 2) continued on day d's logs for ``--warm-epochs``
           epoch(s): ``mtlrec train --init-from`` (vocabularies grow, optimizer state carries over)
  retrain  every log up to day d, from scratch, with the config's epochs and early stopping

It prints each task's test AUC by day and policy next to the oracle (the simulator's true
probabilities), the seconds each policy trained, and the new ids each day; and plots AUC by day.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import pyarrow as pa

from _machine import cpu_line
from mtlrec.artifacts import read_history
from mtlrec.cli.table import markdown
from mtlrec.config import load_config
from mtlrec.data.encode import Encoder
from mtlrec.data.readers import read_table, write_table
from mtlrec.data.shop_days import simulate_days
from mtlrec.experiment import run_experiment
from mtlrec.serve.predictor import Predictor

POLICIES = ("frozen", "warm", "retrain")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train(cfg, data: Path, out: Path, **kwargs) -> float:
    """Train a run on ``data``; its training seconds (epochs and their validation)."""
    run_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(data)})})
    run_experiment(run_cfg, out, overwrite=True, **kwargs)  # its lines on stderr (a bar on a terminal)
    return sum(r["seconds"] for r in read_history(out))


def test_auc(run: Path, table: pa.Table, tasks: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(the run's test AUC per task, the oracle's) on ``table``."""
    result = Predictor.load(run).evaluate(table, where="the test day")
    return ({t: result["data"][t]["auc"] for t in tasks}, {t: result["oracle"][t]["auc"] for t in tasks})


def new_ids(parent: Path, child: Path, features: list[str]) -> dict[str, int]:
    old, new = Encoder.load(parent / "encoder.json"), Encoder.load(child / "encoder.json")
    return {f: len(new.vocabs_[f]) - len(old.vocabs_[f]) for f in features}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/continual.yaml")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rows", type=int, default=100_000, help="impressions per day")
    parser.add_argument("--drift", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-epochs", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    parser.add_argument("--without", action="append", default=[], help="leave a feature out of the schema, repeatable")
    parser.add_argument("--out", default="runs/bench-continual")
    parser.add_argument("--plot", default="docs/continual.png")
    args = parser.parse_args(argv)
    if args.days < 3:
        parser.error("--days: at least 3 (train on day 1, warm start on day 2, test on day 3)")

    out = Path(args.out)
    cfg = load_config(args.config, ["data.split.test=0.0", "train.progress=false", *args.overrides])
    if args.without:
        features = tuple(f for f in cfg.schema_.features if f.name not in args.without)
        cfg = cfg.model_copy(update={"schema_": dataclasses.replace(cfg.schema_, features=features)})
    tasks = [t.name for t in cfg.schema_.tasks if t.kind == "binary"]
    id_features = [f.name for f in cfg.schema_.features if f.kind == "categorical" and f.name.endswith("_id")]
    id_features += [f for f in ("brand",) if any(x.name == f for x in cfg.schema_.features)]

    start = time.perf_counter()
    days = []
    for day in simulate_days(days=args.days, rows=args.rows, drift=args.drift, seed=args.seed):
        path = out / "days" / f"day-{day.day:02d}.parquet"
        write_table(day.table, path)
        days.append(path)
    log(f"simulated {args.days} days of {args.rows:,} impressions (drift {args.drift}) in {out / 'days'}")

    seconds = {"day1": train(cfg, days[0], out / "day1")}
    rows, curves, warm_prev = [], {p: [] for p in (*POLICIES, "oracle")}, out / "day1"
    warm_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": args.warm_epochs})})
    for d in range(2, args.days):
        log(f"day {d}: warm start and retrain; testing on day {d + 1}")
        warm = out / f"warm-{d:02d}"
        seconds[f"warm{d}"] = train(warm_cfg, days[d - 1], warm, init_from=warm_prev)
        grown = new_ids(warm_prev, warm, id_features)
        upto = out / "days" / f"upto-{d:02d}.parquet"
        write_table(pa.concat_tables([read_table(p) for p in days[:d]]), upto)
        retrain = out / f"retrain-{d:02d}"
        seconds[f"retrain{d}"] = train(cfg, upto, retrain)
        test = read_table(days[d])
        runs = {"frozen": out / "day1", "warm": warm, "retrain": retrain}
        for policy, run in runs.items():
            auc, oracle = test_auc(run, test, tasks)
            curves[policy].append(auc)
            time_s = {"frozen": 0.0, "warm": seconds[f"warm{d}"], "retrain": seconds[f"retrain{d}"]}[policy]
            ids = ", ".join(f"{f} +{n}" for f, n in grown.items()) if policy == "warm" else ""
            rows.append([d + 1, policy, *(f"{auc[t]:.4f}" for t in tasks), f"{time_s:.1f}", ids])
        curves["oracle"].append(oracle)
        rows.append([d + 1, "oracle", *(f"{oracle[t]:.4f}" for t in tasks), "", ""])
        warm_prev = warm

    minutes = (time.perf_counter() - start) / 60
    print(f"{cpu_line()}\n")
    print(f"{args.days} days x {args.rows:,} impressions, drift {args.drift}, seed {args.seed}; {args.config} "
          f"{' '.join(args.overrides)}{''.join(' without ' + f for f in args.without)}; day 1 trained from scratch in {seconds['day1']:.1f} s; "
          f"{minutes:.1f} min in all. Test AUC on day d's logs of the models trained up to day d - 1:\n")  # fmt: skip
    print(markdown(["test day", "policy", *(f"{t} auc" for t in tasks), "train s", "new ids (warm)"], rows))
    summary(curves, seconds, tasks, args.days)
    plot(curves, tasks, list(range(3, args.days + 1)), args)


def summary(curves: dict, seconds: dict, tasks: list[str], days: int) -> None:
    print()
    for t in tasks:
        gaps = [w[t] - r[t] for w, r in zip(curves["warm"], curves["retrain"])]
        above = [w[t] - f[t] for w, f in zip(curves["warm"], curves["frozen"])]
        print(f"{t}: warm - retrain {min(gaps):+.4f} .. {max(gaps):+.4f} (mean {sum(gaps) / len(gaps):+.4f}); "
              f"warm - frozen {above[0]:+.4f} on day 3, {above[-1]:+.4f} on day {days}")  # fmt: skip
    warm = sum(seconds[f"warm{d}"] for d in range(2, days))
    retrain = sum(seconds[f"retrain{d}"] for d in range(2, days))
    print(f"training time, days 2-{days - 1}: warm {warm:.1f} s, retrain {retrain:.1f} s "
          f"(warm / retrain = {warm / retrain:.3f})")  # fmt: skip


def plot(curves: dict, tasks: list[str], test_days: list[int], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.9), squeeze=False)
    style = {"frozen": ":", "warm": "-", "retrain": "--", "oracle": "-"}
    for ax, t in zip(axes[0], tasks):
        for policy, points in curves.items():
            ax.plot(test_days, [p[t] for p in points], style[policy], marker="o", ms=3, label=policy,
                    color="0.6" if policy == "oracle" else None)  # fmt: skip
        ax.set_title(f"{t}: test AUC on day d")
        ax.set_xlabel("test day d (trained up to d - 1)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(f"one shop over {args.days} days, {args.rows:,} impressions a day, drift {args.drift}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
