"""What the HTTP endpoints do, without HTTP: validated requests (plain dicts) -> JSON-ready answers.
Kept apart from FastAPI so that benchmarks and tests can time and call it in process."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

import mtlrec
from mtlrec.errors import RunError
from mtlrec.rank.fusion import Fuser
from mtlrec.rank.lists import FUSED, ranked_lists
from mtlrec.serve.backend import load_backend
from mtlrec.serve.columns import ColumnEncoder, Same
from mtlrec.serve.predictor import Predictor
from mtlrec.serve.side import SideFill
from mtlrec.serve.schemas import ID, Limits, RequestModels, feature_help, request_models, typing_features
from mtlrec.spec import FeatureSpec, TaskSpec

_KIND_OUTPUT = {
    "binary": "probability",
    "regression": "value",
    "multiclass": "class probabilities",
    "multilabel": "label probabilities",
}


class RequestError(ValueError):
    """A request that passed its schema but not the rules between its fields (answered as 422)."""

    def __init__(self, loc: Sequence[str | int], message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc, self.message, self.kind = tuple(loc), message, kind


def json_values(values: np.ndarray) -> list[Any]:
    """A numpy array as JSON-ready lists; NaN and infinities -> None."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    return np.where(finite, values, np.array(None, dtype=object)).tolist()


class Service:
    """A Predictor behind the service's request models; ``score`` and ``recommend`` take validated
    request bodies (``model_dump()`` of the generated models, or equal dicts). ``backend`` runs the
    model: "torch", or "onnx" (exported when the service is made, checked equal to PyTorch).
    Nothing in a Service changes once it is made, so that several threads may call it at once."""

    def __init__(self, predictor: Predictor, limits: Limits = Limits(), backend: str = "torch") -> None:
        self.predictor = predictor
        self.limits = limits
        self.backend = load_backend(backend, predictor.model, predictor.encoder.targets_)
        self.columns = ColumnEncoder(predictor.encoder)
        self.fuser = predictor.fuser
        self.outputs = tuple(t.name for t in predictor.tasks)
        if FUSED in self.outputs:
            raise RunError(f"task '{FUSED}' has the name of the fused list; rename the task to serve this run")
        features = typing_features(predictor.encoder.schema.features)
        self.fusion_columns = _fusion_columns(self.fuser, predictor.tasks, features)
        extra = [c for c in self.fusion_columns if c not in features]  # request fields beside the features
        fields = [*features, *extra]
        self.side = SideFill(predictor.joiner, fields) if predictor.joiner is not None else None
        keys = [k for k in self.side.keys if k not in fields] if self.side else []  # key fields beside them
        optional = self.side.columns if self.side else ()
        self.models: RequestModels = request_models(predictor.encoder, limits, extra, optional=optional, keys=keys)
        self.needed = tuple(fields)  # what the model and the fusion read, in every row once filled
        self.ranked = tuple(t.name for t in predictor.tasks if t.out_dim == 1)  # what ranked_lists ranks by
        # what each column of a multiclass/multilabel output's predictions is: its class names in order
        self.classes = {t.name: predictor.encoder.class_names(t.name) or [str(k) for k in range(t.out_dim)]
                        for t in predictor.tasks if t.out_dim > 1}  # fmt: skip
        fields_kind = {c: f.kind for c, f in features.items()} | {c: "numeric" for c in extra}
        # what a reload must keep: each field's kind, whether a side table fills it, the key fields
        self.request_fields = {c: k + (" (filled by key)" if c in optional else "") for c, k in fields_kind.items()}
        self.request_fields |= {k: "key" for k in keys}

    @property
    def run(self) -> dict[str, Any]:
        """The run served: its directory and id."""
        return {"path": str(self.predictor.run_dir) if self.predictor.run_dir else None,
                "id": self.predictor.run_info.get("id")}  # fmt: skip

    def predict(self, columns: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
        """{output: predictions} of ``n`` rows given as request columns (see ``Predictor.score``)."""
        return self.backend(self.columns.encode(columns, n))

    # -- endpoints -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """GET /v1/model: what the service scores and how to call it."""
        p = self.predictor
        derived = {d.spec.name for d in p.model.derived}
        tasks = []
        for t in p.tasks:
            info: dict[str, Any] = {"name": t.name, "kind": t.kind, "output": _KIND_OUTPUT[t.kind]}
            if t.n_classes is not None:
                info["n_classes"] = t.n_classes
                info["classes"] = self.classes[t.name]
            if t.where:
                info["where"] = t.where
            if t.name in derived:
                info["derived"] = True
            tasks.append(info)
        features = [
            {"name": f.name, "column": f.source, "kind": f.kind, "help": feature_help(f, p.encoder)}
            for f in p.encoder.schema.features
        ]
        return {
            "model": p.config.model.name,
            "description": type(p.model).description,
            "version": {"mtlrec": mtlrec.__version__, "run": p.run_info},
            "backend": self.backend.name,
            "tasks": tasks,
            "features": features,
            "fusion": {
                "name": self.fuser.registered_name,
                "params": self.fuser.params(),
                "formula": self.fuser.describe(),
                "columns": list(self.fusion_columns),
            },
            "lists": [*self.ranked, FUSED],
            "request": {"columns": list(self.models.columns), "candidate_id": ID},
            "side_tables": [{"name": s.name, "on": s.on, "columns": list(s.columns)} for s in self.side.sides]
            if self.side is not None else [],
            "limits": {
                "max_rows": self.limits.max_rows,
                "max_candidates": self.limits.max_candidates,
                "max_body_bytes": self.limits.max_body_bytes,
            },
        }

    def score(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v1/score: {"rows": [...]} -> per-output predictions and the fused score, per row."""
        rows = body["rows"]
        if self.side is not None:
            rows = [self.side.fill(r) for r in rows]
            for i, r in enumerate(rows):
                self._require(r, ("rows", i))
        columns = {c: [r[c] for r in rows] for c in self.needed}
        preds = self.predict(columns, len(rows))
        fused = self.fuser(self._fusion_values(preds, columns, len(rows)))
        return {
            "predictions": {name: json_values(v) for name, v in preds.items()},
            "fused": json_values(fused),
            "classes": self.classes,
        }

    def recommend(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v1/recommend: context + candidates -> one ranked list per output and the fused one."""
        context, candidates, k = body.get("context") or {}, body["candidates"], body.get("k", 10)
        if self.side is not None:
            context = self.side.fill(context)
            candidates = [self.side.fill(c, skip=context) for c in candidates]
        n = len(candidates)
        columns = self.candidate_columns(context, candidates)
        ids = [c[ID] for c in candidates]
        if len(set(ids)) < n:
            _first_repeat(ids)
        preds = self.predict(columns, n)
        values = self._fusion_values(preds, columns, n)
        table = pa.table({c: values[c] for c in self.fusion_columns}) if self.fusion_columns else None
        lists = ranked_lists(preds, self.fuser, table=table, k=k)
        return {
            "lists": {
                name: [{"id": ids[i], "score": s} for i, s in zip(r.index.tolist(), json_values(r.score))]
                for name, r in lists.items()
            },
            "fusion": self.fuser.describe(),
        }

    # -- helpers -------------------------------------------------------------------------------
    def candidate_columns(self, context: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]]) -> dict:
        """{column: Same(value) if given in context, else each candidate's value}; a column must be
        in exactly one of the two."""
        columns: dict[str, Any] = {}
        for col in self.needed:
            if col in context:
                clash = next((i for i, c in enumerate(candidates) if col in c), None)
                if clash is not None:
                    raise RequestError(
                        ("candidates", clash, col), f"'{col}' is also given in context; give it in one place only"
                    )
                columns[col] = Same(context[col])
                continue
            try:
                columns[col] = [c[col] for c in candidates]
            except KeyError:
                missing = next(i for i, c in enumerate(candidates) if col not in c)
                message = "Field required (in context, or in every candidate)" + self._key_hint(col)
                raise RequestError(("candidates", missing, col), message, "missing") from None
        return columns

    def _require(self, row: Mapping[str, Any], loc: tuple) -> None:
        """A RequestError for the first field ``row`` still lacks once the side tables filled it."""
        missing = next((c for c in self.needed if c not in row), None)
        if missing is not None:
            raise RequestError((*loc, missing), "Field required" + self._key_hint(missing), "missing")

    def _key_hint(self, column: str) -> str:
        """'; or give user_id, whose row in users.csv has it' for a column a side table fills."""
        found = self.side.source(column) if self.side is not None else None
        return f"; or give '{found[1]}', whose row in {found[0]} has it" if found else ""

    def _fusion_values(self, preds: Mapping[str, np.ndarray], columns: Mapping[str, Any], n: int) -> dict:
        """The fuser's inputs: task predictions and numeric request columns (None -> NaN)."""
        values: dict[str, np.ndarray] = {}
        for name in self.fuser.inputs:
            if name in preds:
                values[name] = preds[name]
                continue
            col = columns[name]
            if isinstance(col, Same):
                values[name] = np.full(n, np.nan if col.value is None else col.value, dtype=np.float64)
            else:
                values[name] = np.array(col, dtype=np.float64)  # None -> NaN
        return values


def _fusion_columns(fuser: Fuser, tasks: Sequence[TaskSpec], features: Mapping[str, FeatureSpec]) -> tuple[str, ...]:
    """The fuser's inputs that are request columns, not predictions; checked to be numbers."""
    widths = {t.name: t.out_dim for t in tasks}
    for name in fuser.inputs:
        if widths.get(name, 1) > 1:
            raise RunError(f"fusion input '{name}' has one value per class; expected a binary or regression task")
        if name in features and features[name].kind != "numeric":
            raise RunError(f"fusion input '{name}' is a {features[name].kind} feature; expected a task or a number")
    return tuple(name for name in fuser.inputs if name not in widths)


def _first_repeat(ids: Sequence[Any]) -> None:
    """Raise a RequestError naming the first candidate whose id an earlier one already has."""
    seen: set[Any] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise RequestError(("candidates", i, ID), f"id {x!r} is used by an earlier candidate")
        seen.add(x)

