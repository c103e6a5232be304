"""Score encoded data with a model, and compute each task's metrics on its own sample space."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mtlrec.data.batches import EncodedData
from mtlrec.config import TrainConfig
from mtlrec.data.encode import Encoder
from mtlrec.device import module_device
from mtlrec.distributed import SINGLE, World
from mtlrec.losses import decode_regression, output_predictions
from mtlrec.metrics import task_metrics
from mtlrec.metrics.bounded import BoundedMetrics
from mtlrec.metrics.curves import reliability, residuals
from mtlrec.models.base import MultiTaskModel
from mtlrec.spec import TaskSpec

ORACLE_PREFIX = "oracle_"
EXACT_METRIC_ROWS = TrainConfig().exact_metric_rows
logger = logging.getLogger("mtlrec.evaluation")
Metrics = dict[str, dict[str, float]]
Advance = Callable[[int], None]  # told how many more rows are done (see mtlrec/progress.py)


@torch.no_grad()
def predict(
    model: MultiTaskModel, data: EncodedData, batch_size: int = 8192, advance: Advance | None = None
) -> dict[str, np.ndarray]:
    """{output: [N] probabilities or values, or [N, K] class/label probabilities}, for every output
    of the model (the schema's tasks and derived ones such as ESMM's click_and_purchase).
    ``advance(rows)`` is told of each batch scored (a progress bar's)."""
    if not len(data):  # an empty split (data.split.valid: 0): no batch to run
        return {t.name: np.zeros((0, t.n_classes) if t.n_classes else 0, np.float32) for t in model.output_tasks}
    was_training = model.training
    model.eval()
    device = module_device(model)  # the batches go where the model is; the predictions come back
    parts: dict[str, list[torch.Tensor]] = {t.name: [] for t in model.output_tasks}
    for batch in data.batches(batch_size):
        for name, p in output_predictions(model.output_tasks, model(batch.to(device)), data.targets).items():
            parts[name].append(p)
        if advance is not None:
            advance(len(batch))
    model.train(was_training)
    return {name: torch.cat(p).cpu().numpy() for name, p in parts.items()}


def predict_shared(
    model: MultiTaskModel, data: EncodedData, batch_size: int, advance: Advance | None, world: World
) -> dict[str, np.ndarray]:
    """``predict`` of every row, each process scoring its rows (positions ``rank`` modulo the
    world's size) and every process getting all the predictions back in order."""
    if world.size == 1:
        return predict(model, data, batch_size, advance)
    lengths = [len(range(r, len(data), world.size)) for r in range(world.size)]
    told = 0  # rows a progress bar was told of: this process's, times the processes

    def every(n: int) -> None:
        nonlocal told
        n = min(n * world.size, len(data) - told)
        told += n
        advance(n)

    mine = predict(model, data.rows(slice(world.rank, None, world.size)), batch_size, every if advance else None)
    if advance is not None:
        advance(len(data) - told)
    out = {}
    for name, p in mine.items():
        parts = world.gather(torch.from_numpy(p), lengths)
        whole = np.empty((len(data), *p.shape[1:]), dtype=p.dtype)
        for r, part in enumerate(parts):
            whole[r :: world.size] = part.numpy()
        out[name] = whole
    return out


def true_labels(task: TaskSpec, data: EncodedData) -> np.ndarray:
    """Labels on their original scale (standardised, log1p regression targets are mapped back)."""
    y = data.labels[task.name]
    if task.kind != "regression":
        return y.numpy()
    return decode_regression(task, y.double(), data.targets.get(task.name, (0.0, 1.0))).numpy()


def task_rows(
    tasks: Sequence[TaskSpec], preds: dict[str, np.ndarray], data: EncodedData
) -> Iterator[tuple[TaskSpec, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(task, labels, predictions, GAUC groups or None) of each task on the rows of its sample space only."""
    for t in tasks:
        mask = data.masks[t.name].numpy()
        yield t, true_labels(t, data)[mask], preds[t.name][mask], data.groups[mask] if data.groups is not None else None


def evaluate(tasks: Sequence[TaskSpec], preds: dict[str, np.ndarray], data: EncodedData) -> Metrics:
    """{task: {metric: value}}, each task on the rows of its sample space only."""
    return {t.name: task_metrics(t.kind, t.metric_names, y, p, g) for t, y, p, g in task_rows(tasks, preds, data)}


def evaluate_model(model: MultiTaskModel, preds: dict[str, np.ndarray], data: EncodedData) -> Metrics:
    """``evaluate`` over every output of ``model``: the schema's tasks and the derived ones (labels
    built from the schema's). ``preds`` may be the model's or the schema tasks' true probabilities
    (derived outputs missing there are computed from their parts)."""
    return evaluate(model.output_tasks, model.complete(preds), model.with_derived(data))


@dataclass
class Scored:
    """A split scored by a model: the predictions of every output, the rows' labels and masks
    (without their inputs), and the ground truth's predictions where the rows carry it."""

    preds: dict[str, np.ndarray]
    rows: EncodedData
    oracle: dict[str, np.ndarray] | None

    def evaluate(self, model: MultiTaskModel) -> tuple[Metrics, Metrics | None]:
        """The metrics, and the oracle's (None without ground truth)."""
        metrics = evaluate_model(model, self.preds, self.rows)
        return metrics, None if self.oracle is None else evaluate_model(model, self.oracle, self.rows)


@dataclass
class Folded:
    """A split too large to hold its scores, evaluated chunk by chunk (``FoldedMetrics``)."""

    metrics: Metrics
    oracle: Metrics | None

    def evaluate(self, model: MultiTaskModel) -> tuple[Metrics, Metrics | None]:
        return self.metrics, self.oracle


def score_split(
    model: MultiTaskModel,
    data: EncodedData,
    batch_size: int = 8192,
    table: pa.Table | None = None,
    exact_rows: int = EXACT_METRIC_ROWS,
    advance: Advance | None = None,
    world: World = SINGLE,
) -> Scored | Folded:
    """A split scored: ``data`` in memory (its raw rows in ``table``), or a stream read chunk by
    chunk (``data.chunks()`` gives each chunk's raw rows), whose predictions, labels and ground truth
    are held (a few numbers per row, not its inputs) up to ``exact_rows`` rows; past that, every
    chunk is folded into bounded statistics and only the metrics come back. ``advance(rows)`` is
    told of each batch scored. Several processes (``world``) each score their rows of every chunk
    and all of them hold every prediction (``predict_shared``), so they reach the same metrics."""
    held: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, EncodedData]] = []
    rows = 0
    with tempfile.TemporaryDirectory(prefix="mtlrec-metrics-") as spill:
        folded: FoldedMetrics | None = None
        for chunk, raw in data.chunks():
            source = raw if raw is not None else table
            oracle = oracle_predictions(source, model.tasks) if source is not None else None
            preds = predict_shared(model, chunk, batch_size, advance, world)
            step = (preds, oracle, chunk if raw is None else chunk.labels_only())
            rows += len(chunk)
            if folded is None and raw is not None and rows > exact_rows:
                folded = FoldedMetrics(model, Path(spill))
                for earlier in held:
                    folded.update(*earlier)
                held = []
            if folded is not None:
                folded.update(*step)
            else:
                held.append(step)
        if folded is not None:
            return Folded(*folded.result(rows))
    truth = None if any(h[1] is None for h in held) else _concat([h[1] for h in held])  # type: ignore[misc]
    return Scored(_concat([h[0] for h in held]), EncodedData.concat([h[2] for h in held]), truth)


class FoldedMetrics:
    """Every output's metrics (and the oracle's) folded chunk by chunk in bounded memory
    (metrics/bounded.py): exact but for AUC, which is binned within a bound logged at the end."""

    def __init__(self, model: MultiTaskModel, spill: Path) -> None:
        self.model = model
        tasks = model.output_tasks
        self.acc = {
            which: {t.name: BoundedMetrics(t.kind, list(t.metric_names), spill / which / t.name) for t in tasks}
            for which in ("data", "oracle")
        }
        self.has_oracle = True

    def update(self, preds: dict[str, np.ndarray], oracle: dict[str, np.ndarray] | None, rows: EncodedData) -> None:
        rows = self.model.with_derived(rows)
        self.has_oracle &= oracle is not None
        for which, scores in (("data", preds), ("oracle", oracle if self.has_oracle else None)):
            if scores is None:
                continue
            for t, y, p, groups in task_rows(self.model.output_tasks, self.model.complete(scores), rows):
                self.acc[which][t.name].update(y, p, groups)

    def result(self, rows: int) -> tuple[Metrics, Metrics | None]:
        out = {which: {name: acc.result() for name, acc in accs.items()} for which, accs in self.acc.items()}
        bound = max(acc.bound for accs in self.acc.values() for acc in accs.values())
        logger.warning(
            "metrics over %d rows folded in bounded memory (more than train.exact_metric_rows): "
            "each AUC is within %.2g of the exact value; the other metrics are exact", rows, bound
        )
        return out["data"], out["oracle"] if self.has_oracle else None


def diagnostics(model: MultiTaskModel, scored: Scored) -> dict[str, dict[str, Any]]:
    """What the report plots of a scored split, per output: a binary one's reliability curve, a
    regression one's residuals (``metrics/curves.py``); other kinds have none."""
    out: dict[str, dict[str, Any]] = {}
    for t, y, p, _ in task_rows(model.output_tasks, scored.preds, model.with_derived(scored.rows)):
        if t.kind == "binary":
            out[t.name] = {"kind": t.kind, "reliability": reliability(y, p)}
        elif t.kind == "regression":
            out[t.name] = {"kind": t.kind, "residuals": residuals(y, p)}
    return out


def evaluate_files(
    model: MultiTaskModel,
    encoder: Encoder,
    path: str,
    batch_size: int = 8192,
    exact_rows: int = EXACT_METRIC_ROWS,
    advance: Advance | None = None,
    read: Callable | None = None,
) -> dict[str, Metrics]:
    """``Predictor.evaluate``'s answer for every row of the files ``path`` names (a directory or
    glob), read piece by piece (by ``read``, default ``read_piece``: data/stream.py FileRows):
    {"data": metrics} plus {"oracle": metrics} with ground truth. ``advance(rows)`` is told of each
    batch scored."""
    from mtlrec.data.stream import FileRows

    schema = encoder.schema
    columns = [*schema.columns(), *([schema.group] if schema.group else [])]
    columns += [ORACLE_PREFIX + t.name for t in model.tasks]
    rows = FileRows(path, encoder, columns, **({"read": read} if read else {}))
    metrics, oracle = score_split(model, rows, batch_size, exact_rows=exact_rows, advance=advance).evaluate(model)
    return {"data": metrics, **({"oracle": oracle} if oracle is not None else {})}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def oracle_predictions(table: pa.Table, tasks: Sequence[TaskSpec]) -> dict[str, np.ndarray] | None:
    """The ground-truth predictions kept beside simulated rows (``oracle_<task>``), or None."""
    columns = [ORACLE_PREFIX + t.name for t in tasks]
    if not all(c in table.column_names for c in columns):
        return None
    out = {}
    for t, c in zip(tasks, columns):
        col = table[c].combine_chunks()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):  # '|'-joined (CSV)
            col = pc.split_pattern(col, t.separator)
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
            flat = pc.cast(col.flatten(), pa.float64())
            out[t.name] = np.asarray(flat, dtype=np.float64).reshape(len(col), -1)
        else:
            out[t.name] = np.asarray(col, dtype=np.float64)
        if out[t.name].ndim != (1 if t.out_dim == 1 else 2):  # ground truth of another kind of task
            return None
    return out
