"""Request and response models of the HTTP service, generated from a run's schema.

A row names each feature by its column: categorical -> string | integer | null, numeric -> number
| null (finite), sequence -> list of strings or integers | separator-joined string | null. Every
feature is required; null means missing and is encoded as in training (unseen category index,
the train fill value plus the missing flag, an empty sequence). Unknown fields are rejected.
Rows are TypedDicts (plain dicts after validation: cheap to build and to read per column).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Sequence

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema, StrictInt, StrictStr, create_model
from typing_extensions import NotRequired, Required, TypedDict

from mtlrec.data.encode import Encoder
from mtlrec.errors import RunError
from mtlrec.spec import FeatureSpec

ID = "id"  # the field naming a candidate in /v1/recommend
_FORBID = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Limits:
    """What one request may hold; past these a request is refused with 413 or 422."""

    max_rows: int = 1000  # rows of one /v1/score request
    max_candidates: int = 1000  # candidates of one /v1/recommend request
    max_body_bytes: int = 4 * 2**20

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_candidates", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"limits: {name} must be >= 1, got {getattr(self, name)}")


def _one_error(message: str) -> GetPydanticSchema:
    """One error naming what was expected, instead of one per member of the union."""

    def schema(source: Any, handler: Any) -> Any:
        core = handler(source)
        union = core["schema"] if core["type"] == "nullable" else core
        union["custom_error_type"] = "wrong_type"
        union["custom_error_message"] = message
        return core

    return GetPydanticSchema(schema)


Category = Annotated[StrictStr | StrictInt | None, _one_error("expected a string, an integer or null")]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)] | None
Id = Annotated[StrictStr | StrictInt, _one_error("expected a string or an integer")]


def _sequence(separator: str) -> Any:
    return Annotated[
        list[StrictStr | StrictInt] | StrictStr | None,
        _one_error(f"expected a list of strings or integers, a '{separator}'-separated string, or null"),
    ]


def _feature_type(f: FeatureSpec) -> Any:
    if f.kind == "categorical":
        return Category
    return Number if f.kind == "numeric" else _sequence(f.separator)


def feature_help(f: FeatureSpec, encoder: Encoder) -> str:
    """One line on what a feature's field takes and how missing values are read."""
    if f.kind == "categorical":
        return f"categorical, {len(encoder.vocabs_[f.name])} values seen in training; others and null: unseen"
    if f.kind == "sequence":
        return f"sequence of categories, the first {f.max_len} are used; null: empty"
    return f"numeric; null: missing (the train fill value {encoder.numeric_[f.name]['fill']:.4g} plus a missing flag)"


def example_value(f: FeatureSpec, encoder: Encoder) -> Any:
    if f.kind == "numeric":
        return round(float(encoder.numeric_[f.name]["fill"]), 2)
    vocab = encoder.vocabs_[f.name]
    return vocab[:3] if f.kind == "sequence" else (vocab[0] if vocab else None)


@dataclass(frozen=True)
class RequestModels:
    """The models of one run: ``row`` (a /v1/score row), ``context`` and ``candidate`` (a
    /v1/recommend request's shared and per-item fields) and the two request bodies."""

    columns: tuple[str, ...]  # every field a row needs: feature columns, then fusion-only columns
    row: type
    context: type
    candidate: type
    score: type[BaseModel]
    recommend: type[BaseModel]


def typing_features(features: Sequence[FeatureSpec]) -> dict[str, FeatureSpec]:
    """{request column: the feature whose kind types its field}. A column that several features read
    (``FeatureSpec.column``) is a number when one of them is numeric (a categorical reading it looks
    the number up as training did: 3.0 is "3"); a sequence shares its column with no other kind."""
    readers: dict[str, list[FeatureSpec]] = {}
    for f in features:
        readers.setdefault(f.source, []).append(f)
    out = {}
    for column, fs in readers.items():
        kinds = {f.kind for f in fs}
        if "sequence" in kinds and len(kinds) > 1:
            names = ", ".join(f"{f.name} ({f.kind})" for f in fs)
            raise RunError(
                f"column '{column}' is read by a sequence feature and another kind ({names}); a request "
                f"field has one type, so this run cannot be served: give the features separate columns"
            )
        out[column] = next((f for f in fs if f.kind == "numeric"), fs[0])
    return out


def request_models(
    encoder: Encoder, limits: Limits, extra_numeric: Sequence[str] = (), *, optional: Sequence[str] = (),
    keys: Sequence[str] = (),
) -> RequestModels:  # fmt: skip
    """Models for the run's features plus ``extra_numeric`` fields (non-feature columns the fusion
    reads, such as price). ``optional``: fields a row may leave out (the run's side tables fill
    them by key); ``keys``: the side tables' key fields (strings or integers), where not features."""
    typing = typing_features(encoder.schema.features)
    fields: dict[str, Any] = {c: _feature_type(f) for c, f in typing.items()}
    examples: dict[str, Any] = {c: example_value(f, encoder) for c, f in typing.items()}
    for name in extra_numeric:
        fields.setdefault(name, Number)
        examples.setdefault(name, 1.0)
    for name in keys:
        fields.setdefault(name, Category)
    columns = tuple(fields)

    row = _typed_dict("Row", {c: NotRequired[t] if c in optional or c in keys else Required[t]
                              for c, t in fields.items()})  # fmt: skip
    context = _typed_dict("Context", {c: NotRequired[t] for c, t in fields.items() if c != ID})
    candidate = _typed_dict("Candidate", {**{c: NotRequired[t] for c, t in fields.items()}, ID: Required[Id]})
    score = create_model(
        "ScoreRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rows": [examples]}]}),
        rows=(list[row], Field(min_length=1, max_length=limits.max_rows, description="Rows to score.")),
    )
    recommend_example = {"context": {}, "candidates": [{**examples, ID: "item-1"}], "k": 10}
    recommend = create_model(
        "RecommendRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [recommend_example]}),
        context=(context, Field(default_factory=dict, description="Fields every candidate shares (user, device).")),
        candidates=(
            list[candidate],
            Field(min_length=1, max_length=limits.max_candidates, description="Items to rank, each with an id."),
        ),
        k=(int, Field(10, ge=1, strict=True, description="Length of each ranked list.")),
    )
    return RequestModels(columns, row, context, candidate, score, recommend)


def _typed_dict(name: str, fields: dict[str, Any]) -> type:
    td = TypedDict(name, fields)  # type: ignore[misc]  (keys need not be identifiers)
    td.__pydantic_config__ = _FORBID  # type: ignore[attr-defined]
    return td


# -- responses (documentation of what the endpoints return) ----------------------------------------


class ScoreResponse(BaseModel):
    predictions: dict[str, list[float | None] | list[list[float]]] = Field(
        description="Per output, one value per row: a probability (binary), a value (regression) or a "
        "list of class/label probabilities (multiclass, multilabel)."
    )
    fused: list[float | None] = Field(description="The fused ranking score of each row.")
    classes: dict[str, list[str]] = Field(
        description="Per multiclass or multilabel output, the class each of its probabilities is for, in order "
        "(the train split's label values, e.g. 'Dresses'; '0', '1', ... for labels that are class indices)."
    )


class RankedItem(BaseModel):
    id: str | int
    score: float | None


class RecommendResponse(BaseModel):
    lists: dict[str, list[RankedItem]] = Field(
        description="One list per binary or regression output (and derived output), and 'fused'; best first, at most k."
    )
    fusion: str = Field(description="The fused score's formula.")


class Health(BaseModel):
    status: str
    model: str
    uptime_s: float
