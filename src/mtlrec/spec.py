"""Frozen descriptions of the input columns (features), the prediction targets (tasks) and the
encoded input layout. Validated with plain Python; pydantic validates them from YAML through
``__pydantic_config__`` without this module importing it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

FeatureKind = Literal["categorical", "numeric", "sequence"]
TaskKind = Literal["binary", "regression", "multiclass", "multilabel"]

DEFAULT_LOSS: dict[str, str] = {
    "binary": "bce",
    "regression": "mse",
    "multiclass": "cross_entropy",
    "multilabel": "bce",
}
LOSSES: dict[str, tuple[str, ...]] = {
    "binary": ("bce",),
    "regression": ("mse", "huber", "poisson"),
    "multiclass": ("cross_entropy",),
    "multilabel": ("bce",),
}
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "gauc", "logloss", "calibration", "accuracy", "precision", "recall", "f1"),
    "regression": ("mse", "rmse", "mae"),
    "multiclass": ("accuracy", "macro_f1", "logloss"),
    "multilabel": ("micro_auc", "macro_auc", "micro_f1", "macro_f1"),
}
# every metric a task of each kind may name: the defaults, metrics of count targets, and ranking by
# the schema's group (ndcg@10: each group's rows ranked by the prediction)
METRIC_NAMES: dict[str, tuple[str, ...]] = {
    **DEFAULT_METRICS,
    "binary": (*DEFAULT_METRICS["binary"], "ndcg@10"),
    "regression": (*DEFAULT_METRICS["regression"], "poisson_deviance", "wape"),
}
POISSON_METRICS = ("poisson_deviance", "wape", "rmse", "mae")  # the defaults of a task with loss: poisson
_FORBID = {"extra": "forbid"}


@dataclass(frozen=True)
class FeatureSpec:
    """One input column.

    categorical: a vocabulary built on the train split (values seen at least ``min_count`` times,
      at most ``max_size`` most frequent); index 0 is shared by unseen and missing values.
    numeric: NaN -> ``fill`` (default: the train mean) plus a missing-indicator column when the train
      split had missing values (or when ``missing_indicator`` is true); then ``transform``.
    sequence: a multi-valued categorical (a list column, or text split on ``separator``), truncated
      to its first ``max_len`` values, pooled by mean.
    """

    __pydantic_config__ = _FORBID
    name: str
    kind: FeatureKind
    column: str | None = None
    min_count: int = 1
    max_size: int | None = None
    transform: Literal["standardize", "log1p", "minmax", "none"] = "standardize"
    fill: float | None = None
    missing_indicator: bool | None = None
    separator: str = "|"
    max_len: int = 20

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"feature '{self.name}': min_count must be >= 1, got {self.min_count}")
        if self.max_size is not None and self.max_size < 1:
            raise ValueError(f"feature '{self.name}': max_size must be >= 1, got {self.max_size}")
        if self.max_len < 1:
            raise ValueError(f"feature '{self.name}': max_len must be >= 1, got {self.max_len}")

    @property
    def source(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class TaskSpec:
    """One prediction target.

    ``where`` names a binary label column (usually another task's): the task's loss and metrics only
    see rows where that label is 1 (e.g. purchase ``where: click`` is the post-click conversion rate).
    ``weight`` is the task's fixed loss weight (lambda). Regression labels may be trained on
    ``log1p`` scale; predictions are returned on the original scale.
    ``loss: poisson`` (regression only) is for counts (units sold, visits): labels must be >= 0, the
    model's output is a log rate (log link) and predictions are expected counts.

    Multiclass and multilabel labels are values (ratings 1-5, department names) or class indices
    0..K-1; the classes come from the train split (data/classes.py), and ``n_classes``, optional,
    must agree with them. A multilabel label is a list, or values joined by ``separator``.
    """

    __pydantic_config__ = _FORBID
    name: str
    kind: TaskKind
    label: str | None = None
    n_classes: int | None = None
    loss: str | None = None
    metrics: tuple[str, ...] = ()
    where: str | None = None
    weight: float = 1.0
    transform: Literal["none", "log1p"] = "none"
    separator: str = "|"

    def __post_init__(self) -> None:
        multi = self.kind in ("multiclass", "multilabel")
        if multi and self.n_classes is not None and self.n_classes < 2:
            raise ValueError(f"task '{self.name}': a {self.kind} task needs n_classes >= 2 (or none: the train "
                             f"split's classes)")  # fmt: skip
        if not multi and self.n_classes is not None:
            raise ValueError(f"task '{self.name}': n_classes is only for multiclass/multilabel tasks")
        if self.loss is not None and self.loss not in LOSSES[self.kind]:
            fits = [kind for kind, names in LOSSES.items() if self.loss in names]
            hint = f" (it is for {' and '.join(fits)} tasks)" if fits else ""
            raise ValueError(
                f"task '{self.name}': loss '{self.loss}' does not fit a {self.kind} task{hint}; "
                f"expected one of {', '.join(LOSSES[self.kind])}"
            )
        unknown = [m for m in self.metrics if m not in METRIC_NAMES[self.kind]]
        if unknown:
            raise ValueError(
                f"task '{self.name}': unknown {self.kind} metric(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(METRIC_NAMES[self.kind])}"
            )
        if self.transform != "none" and self.kind != "regression":
            raise ValueError(f"task '{self.name}': transform is only for regression tasks")
        if self.loss == "poisson" and self.transform != "none":
            raise ValueError(
                f"task '{self.name}': loss poisson models the counts themselves (its log link plays the "
                f"part of log1p); remove transform: {self.transform}"
            )
        if self.weight < 0:
            raise ValueError(f"task '{self.name}': weight must be >= 0, got {self.weight}")

    @property
    def source(self) -> str:
        return self.label or self.name

    @property
    def out_dim(self) -> int:
        if self.n_classes is None and self.kind in ("multiclass", "multilabel"):
            raise ValueError(f"task '{self.name}': its classes are not known before the encoder is fitted")
        return self.n_classes if self.n_classes is not None else 1

    @property
    def loss_name(self) -> str:
        return self.loss or DEFAULT_LOSS[self.kind]

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.metrics:
            return self.metrics
        return POISSON_METRICS if self.loss == "poisson" else DEFAULT_METRICS[self.kind]


@dataclass(frozen=True)
class Schema:
    """Features and tasks of one experiment; ``group`` is the column GAUC groups by (e.g. user)."""

    __pydantic_config__ = _FORBID
    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...]
    group: str | None = None

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("schema: at least one feature is needed")
        if not self.tasks:
            raise ValueError("schema: at least one task is needed")
        for what, names in (("feature", [f.name for f in self.features]), ("task", self.task_names)):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"schema: {what} name(s) used twice: {', '.join(dup)}")
        by_label = {t.source: t for t in self.tasks}
        for t in self.tasks:
            if t.where is None:
                continue
            if t.where == t.source:
                raise ValueError(f"task '{t.name}': where '{t.where}' is the task's own label")
            parent = by_label.get(t.where)
            if parent is not None and parent.kind != "binary":
                raise ValueError(
                    f"task '{t.name}': where '{t.where}' must name a binary label, "
                    f"but task '{parent.name}' is {parent.kind}"
                )
            chain, node = [t], parent
            while node is not None and node.where is not None and node is not t and node not in chain[1:]:
                chain.append(node)
                node = by_label.get(node.where)
            if node is t:
                loop = ", ".join(f"{c.name} where {c.where}" for c in chain)
                raise ValueError(f"task '{t.name}': the sample spaces loop ({loop}); one task must have none")
        labels = {t.source: t.name for t in self.tasks}
        for f in self.features:
            if f.source in labels:
                raise ValueError(
                    f"feature '{f.name}' reads column '{f.source}', the label of task '{labels[f.source]}': "
                    f"a model would be given the answer"
                )

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def columns(self, labels: bool = True) -> list[str]:
        """The input columns the schema reads: features, and with ``labels`` the label and
        sample-space columns."""
        cols = [f.source for f in self.features]
        if labels:
            cols += [t.source for t in self.tasks] + [t.where for t in self.tasks if t.where]
        return cols

    def with_n_classes(self, n_classes: dict[str, int]) -> Schema:
        """This schema with the tasks in ``n_classes`` given that many classes."""
        tasks = tuple(replace(t, n_classes=n_classes[t.name]) if t.name in n_classes else t for t in self.tasks)
        return replace(self, tasks=tasks)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class InputLayout:
    """What the encoder produces and the embedding layer consumes.

    cat_sizes: vocabulary size of each categorical field (index 0 = unseen/missing included).
    seq_sizes: vocabulary size of each sequence field (index 0 = padding/unseen included).
    dense_names: the numeric input columns after encoding (missing indicators included).
    """

    cat_names: tuple[str, ...]
    cat_sizes: tuple[int, ...]
    seq_names: tuple[str, ...]
    seq_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    dense_names: tuple[str, ...]

    @property
    def n_dense(self) -> int:
        return len(self.dense_names)
