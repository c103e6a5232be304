"""Compare models and loss-weighting methods over several seeds, against the single-task baseline.

``run_grid`` encodes the data once and trains every (model, weighting, seed) of the grid, the
baseline (``single_task`` with ``static`` weights) always included; ``summarize`` turns the runs'
test metrics into one ``Cell`` per (model, weighting, task): mean and standard deviation over the
seeds, the lift over single-task, and whether it is negative transfer (worse than single-task by
more than the two standard deviations added together)."""

from __future__ import annotations

import csv
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from mtlrec.config import ExperimentConfig
from mtlrec.metrics import METRIC_MODE
from mtlrec.progress import Progress
from mtlrec.spec import TaskSpec

if TYPE_CHECKING:
    from mtlrec.experiment import Prepared

BASELINE = ("single_task", "static")
Results = dict[tuple[str, str], list[dict[str, Any]]]


def grid(models: Sequence[str], weightings: Sequence[str]) -> list[tuple[str, str]]:
    """The baseline first, then every (model, weighting); single_task only as the baseline (its
    tasks share nothing, so a weighting method has nothing to balance)."""
    runs = [BASELINE]
    for model in models:
        if model != BASELINE[0]:
            runs += [(model, w) for w in weightings if (model, w) not in runs]
    return runs


def check_names(models: Sequence[str], weightings: Sequence[str]) -> None:
    """Fail before any training on a name that is not registered."""
    from mtlrec.models import MODELS
    from mtlrec.weighting import WEIGHTINGS

    for name in models:
        MODELS.get(name)
    for name in weightings:
        WEIGHTINGS.get(name)


def run_grid(
    cfg: ExperimentConfig,
    runs: Sequence[tuple[str, str]],
    seeds: int,
    out: Path,
    *,
    progress: Progress | None = None,
    data: Prepared | None = None,
) -> tuple[Sequence[TaskSpec], Results]:
    """Train every run of ``runs`` with seeds ``cfg.train.seed + 0 .. seeds - 1`` into
    ``out/<model>-<weighting>/seed<k>``; return the schema's tasks and each run's metrics.json.
    The data is encoded once (or passed in already encoded). ``progress`` gets a line as each run
    begins and ends, a bar over the runs, and each run's own (default: lines)."""
    from mtlrec.experiment import prepare, run_experiment

    progress = progress if progress is not None else Progress()
    log = progress.line
    if data is None:
        log("encoding the data once for every run ...")
        with progress.bar("reading and encoding the data", unit=None):
            data = prepare(cfg)
    results: Results = {}
    total, done, start = len(runs) * seeds, 0, time.perf_counter()
    with progress, progress.bar("runs", total, unit="runs") as bar:
        for model, weighting in runs:
            for k in range(seeds):
                seed = cfg.train.seed + k
                log(f"[{done + 1}/{total}] {model} + {weighting}, seed {seed} ...")
                run_cfg = cfg.model_copy(update={
                    "model": cfg.model.model_copy(update={"name": model}),
                    "weighting": cfg.weighting.model_copy(update={"name": weighting}),
                    "train": cfg.train.model_copy(update={"seed": seed}),
                })  # fmt: skip
                path = out / f"{model}-{weighting}" / f"seed{seed}"
                metrics = run_experiment(run_cfg, path, overwrite=True, data=data, progress=progress)
                results.setdefault((model, weighting), []).append(metrics)
                done += 1
                bar.advance(1)
                elapsed = time.perf_counter() - start
                log(f"[{done}/{total}] done; {elapsed:.0f}s so far, about {elapsed / done * (total - done):.0f}s to go")
    return data.schema.tasks, results


@dataclass(frozen=True)
class Cell:
    """One (model, weighting, task): the test metric over the seeds, and against single-task."""

    model: str
    weighting: str
    task: str
    metric: str
    values: tuple[float, ...]
    mean: float
    std: float
    baseline_mean: float
    baseline_std: float
    lift: float  # percent of the baseline; > 0 is better whatever the metric's direction
    negative_transfer: bool


def _oriented(metric: str, value: float) -> float:
    mode = METRIC_MODE[metric]
    return value if mode == "max" else -value if mode == "min" else -abs(value - 1.0)


def _spread(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


Headline = Callable[[TaskSpec], str] | Mapping[str, str]


def _metric(headline: Headline, task: TaskSpec) -> str:
    return headline[task.kind] if isinstance(headline, Mapping) else headline(task)


def summarize(tasks: Sequence[TaskSpec], results: Results, headline: Headline) -> list[Cell]:
    """``headline``: the metric to compare of each task (e.g. ``cli.table.headline``), or of each
    task kind ({"binary": "auc", ...})."""
    cells = []
    base = results[BASELINE]
    for (model, weighting), runs in results.items():
        for task in tasks:
            metric = _metric(headline, task)
            values = tuple(r["test"][task.name][metric] for r in runs)
            mean, std = _spread(values)
            b_mean, b_std = _spread([r["test"][task.name][metric] for r in base])
            gain = _oriented(metric, mean) - _oriented(metric, b_mean)
            lift = 100.0 * gain / abs(b_mean) if b_mean else math.nan
            negative = (model, weighting) != BASELINE and gain < -(std + b_std)
            cells.append(Cell(model, weighting, task.name, metric, values, mean, std, b_mean, b_std, lift, negative))
    return cells


def table(cells: Sequence[Cell]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for a markdown table: one row per (model, weighting), one column per task,
    each cell ``mean ± std (lift)``, ``NT`` marking negative transfer."""
    tasks = list(dict.fromkeys((c.task, c.metric) for c in cells))
    rows: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        text = f"{c.mean:.4f} ± {c.std:.4f}"
        if (c.model, c.weighting) != BASELINE:
            text += f" ({c.lift:+.2f}%{' NT' if c.negative_transfer else ''})"
        rows.setdefault((c.model, c.weighting), [c.model, c.weighting]).append(text)
    header = ["model", "weighting", *(f"{t} {m}" for t, m in tasks)]
    return header, list(rows.values())


def oracle_row(tasks: Sequence[TaskSpec], results: Results, headline: Headline) -> list[str] | None:
    """The row of ``table`` for the oracle (the simulator's ground truth scored like a model: the
    best achievable), when the runs have one (it depends on the test split only: every run shares it)."""
    runs = [run for cell in results.values() for run in cell]
    oracle = [run.get("oracle", {}).get("test") for run in runs]
    if not runs or any(o is None for o in oracle):
        return None
    values = [oracle[0].get(t.name, {}).get(_metric(headline, t)) for t in tasks]
    return ["oracle", "", *("-" if v is None else f"{v:.4f}" for v in values)]


def write_csv(path: Path, cells: Sequence[Cell]) -> None:
    from mtlrec.artifacts import atomic_path

    fields = ["model", "weighting", "task", "metric", "n", "mean", "std", "single_task_mean", "single_task_std",
              "lift_pct", "negative_transfer", "values"]  # fmt: skip
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for c in cells:
            writer.writerow([c.model, c.weighting, c.task, c.metric, len(c.values), c.mean, c.std, c.baseline_mean,
                             c.baseline_std, c.lift, c.negative_transfer, ";".join(map(str, c.values))])  # fmt: skip


def read_csv(path: Path) -> list[Cell]:
    """The cells ``write_csv`` wrote (a RunError naming the file and line when it is not that)."""
    from mtlrec.errors import RunError

    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RunError(f"{path}: not a readable CSV file ({err})") from None
    cells = []
    for line, r in enumerate(rows, start=2):
        try:
            cells.append(Cell(r["model"], r["weighting"], r["task"], r["metric"],
                              tuple(_number(v) for v in r["values"].split(";") if v), float(r["mean"]), float(r["std"]),
                              float(r["single_task_mean"]), float(r["single_task_std"]), float(r["lift_pct"]),
                              {"True": True, "False": False}[r["negative_transfer"]]))  # fmt: skip
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise RunError(f"{path} line {line}: not a row of mtlrec compare's table ({type(err).__name__}: {err})") from None
    return cells


def _number(text: str) -> float:
    """A value of the ``values`` column: a float, or None (an undefined metric) as nan."""
    return math.nan if text == "None" else float(text)
