from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from mtlrec.progress import QUIET_HELP, Progress

NAME = "frontier"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    data: Path = typer.Argument(..., metavar="DATA", help="Logged impressions (CSV or Parquet): features and labels."),
    fuser: str = typer.Option("product", "--fuser", help="Whose weights to search: product | weighted_sum."),
    inputs: str = typer.Option("", "--inputs", help="Fuser inputs, tasks or numeric columns, e.g. click,purchase,order_value (default: every binary and regression task)."),
    objectives: str = typer.Option("click,purchase,gmv", "--objectives", help="NAME or NAME:METRIC (ndcg | recall | sum) per label column; gmv: the --gmv-column summed over the top k."),
    k: int = typer.Option(10, "--k", help="Length of each ranked list."),
    group: str = typer.Option("request_id", "--group", help="Column whose groups are ranked: request, session or user id."),
    gmv_column: str = typer.Option("order_value", "--gmv-column", help="Order value column behind the gmv objective."),
    baseline: str = typer.Option("", "--baseline", help="Task that ranks alone for the baseline (default: the top binary task, e.g. click)."),
    maximize: str = typer.Option("", "--maximize", help="Objective the chosen setting maximises (default: gmv if given, else the first)."),
    keep: List[str] = typer.Option([], "--keep", help="OBJECTIVE>=RATIO of the baseline's value, e.g. click>=0.98; repeatable."),
    trials: int = typer.Option(100, "--trials", help="Settings the search tries."),
    seed: int = typer.Option(0, "--seed"),
    sampler: str = typer.Option("tpe", "--sampler", help="Optuna multi-objective sampler: tpe | nsga2 | random."),
    out: Path = typer.Option(None, "--out", help="Folder for frontier.csv and frontier.png (default: RUN/frontier)."),
    save: bool = typer.Option(True, "--save/--no-save", help="Store the chosen fusion in RUN/fusion.json."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Search fusion weights for the Pareto frontier of ranking objectives on logged data, write it as a table and a plot, and store the setting that --maximize/--keep choose."""
    import sys

    from mtlrec.artifacts import write_json
    from mtlrec.cli.table import markdown
    from mtlrec.data.readers import read_table
    from mtlrec.rank.frontier import Rule, check_searchable
    from mtlrec.rank.fusion import default_fuser
    from mtlrec.rank.objectives import parse_objectives
    from mtlrec.rank.plot import plot_frontier
    from mtlrec.rank.study import frontier_study, largest_group, write_csv
    from mtlrec.serve.predictor import Predictor

    check_searchable(fuser)
    objs = parse_objectives(objectives, aliases={"gmv": gmv_column})
    keys = [o.key for o in objs]
    rule = Rule.parse(maximize or ("gmv" if "gmv" in keys else keys[0]), keep, keys)
    predictor = Predictor.load(run_dir)
    tasks = predictor.model.tasks
    names = [n.strip() for n in inputs.split(",") if n.strip()] or [
        t.name for t in tasks if t.kind in ("binary", "regression")
    ]
    progress = Progress.auto(quiet)
    with progress.bar(f"reading {data}", unit=None):
        table = read_table(data)
    if largest_group(table, group, data.name) <= k:
        print(f"warning: no '{group}' has more than {k} rows: each top {k} is its whole group, so every fusion "
              f"scores the same; group by a column with more candidates per group or lower --k", file=sys.stderr)  # fmt: skip
    with progress.bar(f"scoring {data}", table.num_rows) as bar:
        preds = predictor.predict(table, where=data.name, advance=bar.advance)
    with progress.bar("searching fusion weights", trials + 1, unit="trials") as bar:
        result = frontier_study(
            preds, table,
            fuser=fuser, inputs=names, baseline=baseline or default_fuser(tasks).inputs[0], objectives=objs,
            rule=rule, group=group, k=k, trials=trials, seed=seed, sampler=sampler, where=data.name,
            advance=bar.advance,
        )  # fmt: skip

    out = out or run_dir / "frontier"
    write_csv(out / "frontier.csv", *result.csv_table())
    j = result.maximized
    plot_frontier(out / "frontier.png", result.labels, result.values, result.pareto, result.values[0], result.chosen,
                  j, {keys.index(n): r for n, r in rule.keep},
                  title=f"{predictor.config.model.name}, {fuser} fusion, {data.name} by {group}: {rule}",
                  baseline_label=result.settings[0].label)  # fmt: skip
    header, rows = result.table(max_rows=15)
    print(markdown(header, rows))
    if len(rows) < len(result.frontier()):
        print(f"({len(rows)} of {len(result.frontier())} rows: the baseline, the chosen, the best on each objective "
              f"and evenly spaced others; all in {out / 'frontier.csv'})")  # fmt: skip
    chosen = result.settings[result.chosen]
    others = ", ".join(f"{result.labels[i]} x{result.ratio(result.chosen, i):.4f}" for i in range(len(keys)) if i != j)
    print(
        f"\n{int(result.pareto.sum())} Pareto-optimal of {len(result.settings)} settings (baseline + {trials} trials) "
        f"in {result.seconds:.1f} s; {result.groups:,} groups by '{group}' in {table.num_rows:,} rows\n"
        f"chosen ({rule}): {chosen.label}: {chosen.fuser.describe()}\n"
        f"  {result.labels[j]} {result.values[result.chosen, j]:.4f} vs {result.values[0, j]:.4f} for the baseline "
        f"({100 * (result.ratio(result.chosen, j) - 1):+.2f} %); vs the baseline: {others or '-'}\n"
        f"wrote {out / 'frontier.csv'} and {out / 'frontier.png'}"
    )
    if save:
        record = result.record(data=str(data), group=group, trials=trials, seed=seed, sampler=sampler)
        write_json(run_dir / "fusion.json", record)
        print(f"stored the chosen fusion in {run_dir / 'fusion.json'} (predict --lists and serve use it)")
