"""The report of one run directory, from what the run recorded: metrics.json (test metrics, the
oracle's), history.jsonl (per epoch: train loss, validation metrics, task weights, gradient
conflict, expert utilisation), diagnostics.json (binned test predictions) and, after
``mtlrec frontier``, fusion.json and frontier/frontier.png. Nothing is recomputed; a section the
run cannot have is listed with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mtlrec.artifacts import DIAGNOSTICS, placement_text, read_history, read_json, read_run, read_yaml
from mtlrec.metrics import METRIC_MODE
from mtlrec.report import figures
from mtlrec.report.page import Cell, Figure, Page, Section, Table

FRONTIER_PNG = Path("frontier") / "frontier.png"  # where `mtlrec frontier` writes its plot by default
# the metric a curve shows: the first the task reports (poisson_deviance: a count task, loss poisson)
HEADLINE = ("auc", "micro_auc", "poisson_deviance", "rmse", "accuracy")
MAX_PANELS = 6  # conflict matrices: at most this many epochs, evenly spaced, the first and last included


@dataclass
class Recorded:
    """The files of a run directory that the report reads (one run's, see ``read_run``)."""

    info: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    diagnostics: dict[str, Any] | None
    fusion: dict[str, Any] | None
    frontier_png: bytes | None


def read_recorded(run_dir: Path) -> Recorded:
    def read(d: Path) -> Recorded:
        diag = d / DIAGNOSTICS
        fusion, png = d / "fusion.json", d / FRONTIER_PNG
        return Recorded(
            info=read_json(d / "run.json"),
            config=read_yaml(d / "config.yaml") or {},
            metrics=read_json(d / "metrics.json"),
            history=read_history(d),
            diagnostics=read_json(diag) if diag.is_file() else None,
            fusion=read_json(fusion) if fusion.is_file() else None,
            frontier_png=png.read_bytes() if png.is_file() else None,
        )

    return read_run(run_dir, read)


def run_page(run_dir: Path) -> Page:
    """The report page of a complete run directory."""
    r = read_recorded(run_dir)
    page = Page(title=f"mtlrec run: {run_dir.resolve().name}", facts=_facts(r), sections=[])
    for build in (_test_metrics, _curves, _weights, _conflict, _experts, _calibration, _residuals, _frontier):
        section, why = build(r)
        if section is not None:
            page.sections.append(section)
        if why:
            page.absent.append(why)
    return page


def _facts(r: Recorded) -> list[tuple[str, str]]:
    cfg, m, info = r.config, r.metrics, r.info
    data = cfg.get("data", {})
    source = data.get("path") or data.get("source", "?")
    simulated = data.get("synthetic") or {}
    if source == "synthetic" and isinstance(simulated.get("rows"), int):
        source = f"synthetic, {simulated['rows']:,} rows, seed {simulated.get('seed', '?')}"
    seconds = sum(h.get("seconds", 0.0) for h in r.history)
    facts = [
        ("model", str(cfg.get("model", {}).get("name", info.get("model", "?")))),
        ("weighting", str(cfg.get("weighting", {}).get("name", "?"))),
        ("data", str(source)),
        ("epochs", f"{len(r.history)} trained in {seconds:.1f} s; best epoch {m.get('best_epoch', '?')} by valid "
                   f"{m.get('monitor', '?')}"),  # fmt: skip
        ("created", f"{info.get('created', '?')} by mtlrec {info.get('mtlrec', '?')} (run {info.get('id', '?')[:12]})"),
    ]
    placed = info.get("trained_on")  # (older runs did not record it)
    if placed:
        facts.append(("trained on", placement_text(placed)))
    if info.get("parent"):
        facts.append(("warm start from", str(info["parent"].get("run", info["parent"]))))
    return facts


def _tasks(r: Recorded) -> dict[str, str]:
    """{task: kind} of the schema's tasks, in the schema's order."""
    return {t["name"]: t["kind"] for t in (r.config.get("schema") or {}).get("tasks", [])}


def headline(values: dict[str, Any]) -> str | None:
    """The metric a task's curve and table lead with: AUC, micro-AUC, Poisson deviance, RMSE or accuracy."""
    return next((m for m in HEADLINE if m in values), next(iter(values), None))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _test_metrics(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    test = r.metrics.get("test", {})
    oracle = (r.metrics.get("oracle") or {}).get("test")
    header = ["task", "metric", "test"] + (["oracle", "of the oracle's"] if oracle else []) + ["other test metrics"]
    rows = []
    for task, values in test.items():
        name = headline(values)
        if name is None:
            continue
        row = [Cell(task), Cell(name), Cell(_fmt(values[name]), "num")]
        if oracle:
            best = (oracle.get(task) or {}).get(name)
            row += [Cell(_fmt(best), "num"), Cell(_share(name, values[name], best), "num")]
        others = " · ".join(f"{k} {_fmt(v)}" for k, v in values.items() if k != name)
        rows.append(row + [Cell(others, "small")])
    section = Section("metrics", "Test metrics", tables=[Table(header, rows)],
                      intro="Each task's metrics on the test split, on the rows of its sample space; with ground "
                            "truth (simulated data), the oracle's: the best achievable, from the true probabilities.")  # fmt: skip
    why = None if oracle else ("Oracle", "the data carries no ground truth (oracle_<task> columns), so no oracle column")
    return section, why


def _share(metric: str, value: float | None, oracle: float | None) -> str:
    """The model's metric as a percentage of the oracle's, oriented so that 100 % is the oracle and
    less is worse (RMSE: oracle / model)."""
    if value is None or oracle is None or not value or not oracle or METRIC_MODE.get(metric) == "target1":
        return "-"
    share = value / oracle if METRIC_MODE.get(metric) == "max" else oracle / value
    return f"{100 * share:.1f} %"


def _curves(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    if not r.history:
        return None, ("Training curves", "history.jsonl is empty or missing")
    epochs = [h["epoch"] for h in r.history]
    loss = {t: [h.get("train_loss", {}).get(t) for h in r.history] for t in r.history[-1].get("train_loss", {})}
    metric = {}
    for task, values in r.history[-1].get("valid", {}).items():
        name = headline(values)
        if name is not None:
            metric[task] = (name, [h.get("valid", {}).get(task, {}).get(name) for h in r.history])
    uri = figures.training_curves(epochs, loss, metric, r.metrics.get("best_epoch"))
    fig = Figure("curves", uri, "train loss and validation metric per task by epoch")
    intro = ("Per task: the mean train loss of each epoch (blue, left axis) and the validation metric at its end "
             "(orange, right axis); the dashed line is the best epoch, whose weights the run keeps.")  # fmt: skip
    return Section("curves", "Training curves", intro, [fig]), None


def _weights(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    rows = [h for h in r.history if h.get("weights")]
    if not rows:
        return None, ("Task weights", "history.jsonl records no task weights")
    names = list(rows[-1]["weights"])
    series = {t: [h["weights"].get(t) for h in rows] for t in names}
    method = r.config.get("weighting", {}).get("name", "the weighting method")
    intro = f"The weight of each task's loss at the end of each epoch, as the {method} weighting set it."
    if all(len(set(v)) == 1 for v in series.values()):  # static weights: a chart of flat lines says less
        table = Table(["task", "weight"], [[Cell(t), Cell(_fmt(v[0]), "num")] for t, v in series.items()])
        return Section("weights", "Task weights", intro + " They stayed the same in every epoch.", tables=[table]), None
    uri = figures.lines([h["epoch"] for h in rows], series, xlabel="epoch", ylabel="loss weight")
    return Section("weights", "Task weights", intro, [Figure("weights", uri, "task weights by epoch")]), None


def _even(items: list[Any], n: int) -> list[Any]:
    """At most ``n`` of ``items``, evenly spaced, the first and the last included."""
    if len(items) <= n:
        return items
    return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, n).round().astype(int)))]


def _conflict(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    measured = [h for h in r.history if h.get("conflict")]
    if not measured:
        every = (r.config.get("train") or {}).get("conflict_every")
        why = "train.conflict_every is 0" if every == 0 else "history.jsonl records no gradient-conflict measurement"
        return None, ("Gradient conflict", why)
    panels = []
    for h in _even(measured, MAX_PANELS):
        pairs = [m["cosine"] for m in h["conflict"]]
        names = list(dict.fromkeys(n for p in pairs for key in p for n in key.split("/")))
        matrix = np.full((len(names), len(names)), np.nan)
        for key in pairs[0]:
            a, b = key.split("/")
            values = [p[key] for p in pairs if p.get(key) is not None]
            if values:
                i, j = names.index(a), names.index(b)
                matrix[i, j] = matrix[j, i] = float(np.mean(values))
        steps = len(pairs)
        panels.append((f"epoch {h['epoch']}" + (f" (mean of {steps})" if steps > 1 else ""), names, names, matrix))
    seen = np.abs(np.concatenate([p[3].ravel() for p in panels]))
    scale = max(0.05, float(seen[np.isfinite(seen)].max())) if np.isfinite(seen).any() else 1.0
    uri = figures.heatmaps(panels, vmin=-scale, vmax=scale, cmap="RdBu", label="cosine of task gradients")
    intro = ("Cosine similarity of each pair of tasks' gradients on the shared parameters, measured during each "
             "epoch: negative (red) means the two tasks pull the shared part in opposite directions; the "
             "colour scale spans the largest magnitude seen.")  # fmt: skip
    shown = "" if len(panels) == len(measured) else f" {len(panels)} of {len(measured)} epochs shown."
    section = Section("conflict", "Gradient conflict", intro + shown, [Figure("conflict", uri, "gradient cosine matrices")])
    return section, None


def _experts(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    used = [h for h in r.history if h.get("experts")]
    if not used:
        model = r.config.get("model", {}).get("name", "this model")
        return None, ("Expert utilisation", f"the model ({model}) has no gates over experts")
    panels = []
    for h in _even(used, 2):  # the first epoch and the last
        gates = h["experts"]
        experts = list(dict.fromkeys(e for g in gates.values() for e in g))
        matrix = np.array([[g.get(e, np.nan) for e in experts] for g in gates.values()], dtype=np.float64)
        panels.append((f"epoch {h['epoch']}", list(gates), experts, matrix))
    top = max(float(np.nanmax(p[3])) if np.isfinite(p[3]).any() else 0.0 for p in panels)
    uri = figures.heatmaps(panels, vmin=0.0, vmax=max(top, 0.05), cmap="Blues", label="mean gate weight")
    intro = ("The mean weight each gate (a row) gave each expert (a column) over the training rows of the first "
             "and the last epoch; a grey cell is an expert that gate does not see.")  # fmt: skip
    return Section("experts", "Expert utilisation", intro, [Figure("experts", uri, "gate by expert utilisation")]), None


def _diagnostic(
    r: Recorded, kind: str, key: str, rows: Callable[[dict[str, Any]], list[int]], section: Section,
    draw: Callable[[dict[str, Any]], str],
) -> tuple[Section | None, tuple[str, str] | None]:
    """``section`` with the figure ``draw`` makes of the test split's binned predictions
    (diagnostics.json) of the outputs of ``kind`` that have rows (``rows``: a summary's counts), or
    why there is none."""
    if r.diagnostics is None:
        return None, (section.title, f"this run has no {DIAGNOSTICS} (it was trained before mtlrec recorded one); "
                                     "`mtlrec report RUN --diagnose` scores its test split again for it")  # fmt: skip
    if "folded" in r.diagnostics:
        rows = r.diagnostics["folded"]
        return None, (section.title, f"the test split ({rows:,} rows) was evaluated in bounded memory (more than "
                                     "train.exact_metric_rows), which keeps no scores to plot")  # fmt: skip
    found = {t: d[key] for t, d in r.diagnostics.get("test", {}).items() if d.get("kind") == kind}
    if not found:
        return None, (section.title, f"the run has no {kind} task")
    found = {t: d for t, d in found.items() if rows(d)}
    if not found:
        return None, (section.title, f"the test split has no rows for the {kind} tasks")
    section.figures.append(Figure(section.id, draw(found), section.title))
    return section, None


def _calibration(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    intro = ("Reliability on the test split: the rows of each binary task's sample space in 10 bins of equal size "
             "by prediction; each point is a bin's mean predicted probability against its observed rate. A "
             "calibrated model lies on the diagonal; ECE is the mean gap, weighted by rows.")  # fmt: skip
    section = Section("calibration", "Calibration", intro)
    return _diagnostic(r, "binary", "reliability", lambda c: c["count"], section, figures.reliability)


def _residuals(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    intro = ("Residuals (label - prediction) of each regression task on the test split, on the label's own scale: "
             "their histogram, and per bin of predictions the mean label with its 10-90 % range; on the dashed "
             "line the prediction is right on average.")  # fmt: skip
    section = Section("residuals", "Regression residuals", intro)
    return _diagnostic(r, "regression", "residuals", lambda d: d["by_prediction"]["count"], section, figures.residuals)


def _frontier(r: Recorded) -> tuple[Section | None, tuple[str, str] | None]:
    if r.fusion is None and r.frontier_png is None:
        return None, ("Fusion frontier", "no frontier searched yet (`mtlrec frontier RUN DATA` searches one)")
    section = Section("frontier", "Fusion frontier",
                      "The Pareto frontier of ranking objectives that `mtlrec frontier` found for this run's "
                      "fusion weights, each objective as a ratio to ranking by the baseline task alone.")  # fmt: skip
    if r.frontier_png is not None:
        section.figures.append(Figure("frontier", figures.png_uri(r.frontier_png), "fusion frontier"))
    else:
        section.notes.append(f"{FRONTIER_PNG} is not in the run directory (written elsewhere with --out).")
    if r.fusion is not None:
        f = r.fusion
        rows = [[Cell(k), Cell(_fmt(o.get("value")), "num"), Cell(_fmt(o.get("baseline")), "num"),
                 Cell(f"{100 * (o['value'] / o['baseline'] - 1):+.2f} %" if o.get("baseline") else "-", "num")]
                for k, o in f.get("objectives", {}).items()]  # fmt: skip
        fuser = f.get("fuser", {})
        name = fuser.get("name", "?")
        weights = ", ".join(f"{k} {v:g}" for k, v in ((fuser.get(name) or {}).get("weights") or {}).items())
        caption = f"chosen ({f.get('rule', '?')}): {name} fusion, weights {weights or '-'}"
        section.tables.append(Table(["objective", "chosen", "baseline", "change"], rows, caption))
    return section, None
