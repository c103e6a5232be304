"""The experiment config: one YAML file, validated with pydantic, with dotted ``--set`` overrides.

Model and weighting hyperparameters live in a section named after the model or method
(``model.mmoe.n_experts``), so switching ``model.name`` never breaks a config; the builder checks
each section against the constructor's typed keyword arguments."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mtlrec.errors import ConfigError
from mtlrec.spec import Schema

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"  # train.device, and --device of predict, evaluate, serve


def device_setting(value: str) -> str:
    """``value`` if it is a device setting (auto | cpu | cuda | cuda:N), else a ValueError saying so."""
    if not re.fullmatch(DEVICE_PATTERN, value):
        raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Sections(BaseModel):
    """Known fields plus one dict section per registered name (checked when built)."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = "name"  # what the sections are named after, for error messages

    @pydantic.model_validator(mode="after")
    def _sections_are_mappings(self) -> "_Sections":
        for key, section in self.sections().items():
            if not isinstance(section, dict):
                raise ValueError(f"unknown key '{key}' (the options of a {self.kind} go in a mapping named after it)")
        return self

    def sections(self) -> dict[str, dict[str, Any]]:
        return dict(self.model_extra or {})

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections().get(name) or {})


class SyntheticConfig(_Strict):
    rows: int = Field(200_000, ge=1)
    users: int = Field(20_000, ge=1)
    items: int = Field(10_000, ge=1)
    categories: int = Field(20, ge=2)
    brands: int = Field(200, ge=1)
    page_size: int = Field(10, ge=1)
    correlation: float = Field(0.5, ge=0.0, le=1.0)
    seed: int = 0
    # also price_sensitivity, title and item_categories with their oracles (data/shop_labels.py)
    applications: bool = False


class SplitConfig(_Strict):
    """random: rows at random (seeded); time: the last rows by ``column``; user: whole groups
    of ``column`` (e.g. user_id) go to one split; hash: by a stable hash of ``column`` (a user,
    request or row id): the same keys in the same split on every run and machine, one batch at a
    time (what a stream splits by)."""

    method: Literal["random", "time", "user", "hash"] = "random"
    valid: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    column: str | None = None
    # time by thresholds (what a stream splits by time with): rows whose ``column`` is at or after
    # test_from are test, at or after valid_from (and before test_from) valid, the rest train; a
    # number, or text the column's type reads (e.g. "2026-11-29" for a date or timestamp column)
    valid_from: int | float | str | None = None
    test_from: int | float | str | None = None

    @pydantic.model_validator(mode="after")
    def _check(self) -> "SplitConfig":
        if self.valid + self.test >= 1.0:
            raise ValueError("valid + test must leave rows for training")
        if self.method != "random" and not self.column:
            raise ValueError(f"split method '{self.method}' needs a column")
        if self.thresholds and self.method != "time":
            raise ValueError("valid_from and test_from split by time: set method: time")
        if self.valid_from is not None and self.test_from is None:
            raise ValueError("valid_from needs test_from (the rows from test_from on are the test split)")
        pair = (self.valid_from, self.test_from)
        if None not in pair and isinstance(pair[0], str) == isinstance(pair[1], str) and pair[0] > pair[1]:  # type: ignore[operator]
            raise ValueError(f"valid_from {pair[0]!r} comes after test_from {pair[1]!r}")
        return self

    @property
    def thresholds(self) -> bool:
        """The split is by thresholds of ``column`` (not by fractions of the rows in time order)."""
        return self.test_from is not None or self.valid_from is not None


class JoinConfig(_Strict):
    """A side table (users.csv, items.parquet) joined onto the log as it is read: its row whose
    ``on`` column equals the log row's adds its other columns (or only ``columns``) to that row."""

    path: str  # a CSV or Parquet file, one row per key
    on: str  # the key column, in the side table and in the log
    columns: tuple[str, ...] | None = None  # the columns to take (default: all but the key)


class DataConfig(_Sections):
    """source: 'synthetic' (the built-in shop simulator), 'file' (CSV or Parquet at ``path``), or a
    public data set adapter name (``mtlrec datasets`` lists them). An adapter's options live in a
    section named after it (``data.taobao_userbehavior.negatives``), checked when it is loaded."""

    kind: ClassVar[str] = "source"

    source: str = "synthetic"
    path: str | None = None  # a file, or a directory or glob of files (streamed)
    synthetic: SyntheticConfig = SyntheticConfig()
    split: SplitConfig = SplitConfig()
    # None: a directory or glob of files streams, one file is read whole; true: stream one file too
    stream: bool | None = None
    valid_path: str | None = None  # rows to validate on (file, directory or glob): the split by files
    test_path: str | None = None  # rows to test on
    shuffle_buffer: int = Field(262_144, ge=1)  # rows shuffled together when streaming (rounded up to batches)
    # read and encode the next window in a background thread (None: when a core is free of torch's threads)
    prefetch: bool | None = None
    join: tuple[JoinConfig, ...] | None = None  # side tables joined onto the log by key (data/join.py)

    @property
    def name(self) -> str:  # what hyper.build_registered looks up
        return self.source


class ModelConfig(_Sections):
    kind: ClassVar[str] = "model"
    name: str = "shared_bottom"
    embedding_dim: int = Field(16, ge=1)
    tower_dims: tuple[int, ...] = (64,)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # the feature-interaction bottom of every model: mlp (the model's own MLPs) | dcn (DCN-v2 cross layers first)
    bottom: Literal["mlp", "dcn"] = "mlp"
    cross_layers: int = Field(2, ge=1)
    # tasks with their own embeddings + MLP beside the model (logits added; see models/task_paths.py)
    task_paths: tuple[str, ...] = ()
    task_path_dims: tuple[int, ...] = (256, 128, 64)


class WeightingConfig(_Sections):
    kind: ClassVar[str] = "method"
    name: str = "static"


class FusionConfig(_Sections):
    """How task predictions become one ranking score: a registered fuser and one section of
    hyperparameters per fuser name (``fusion.product.weights``), see ``mtlrec.rank.fusion``."""

    kind: ClassVar[str] = "fuser"

    name: str = "product"


class TrainConfig(_Strict):
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(1.0, gt=0, le=1)  # the learning rate is multiplied by this after every epoch
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(1024, ge=1)
    eval_batch_size: int = Field(8192, ge=1)
    # a streamed split's scores are held for exact metrics up to this many rows; beyond, its metrics
    # are folded chunk by chunk in bounded memory (AUC binned, within a logged bound; metrics/bounded.py)
    exact_metric_rows: int = Field(2_000_000, ge=0)
    epochs: int = Field(5, ge=1)
    patience: int = Field(2, ge=1)
    monitor: str = "auto"
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    progress: bool = True
    # gradient conflict in history.jsonl: every N steps; None: each epoch's last step; 0: never
    conflict_every: int | None = Field(None, ge=0)
    # embedding tables: rowwise (Adam on the batch's rows only, same result as dense Adam; no weight
    # decay on the tables) | dense (the optimizer above over the whole tables)
    embedding_update: Literal["rowwise", "dense"] = "rowwise"
    # where the model, the optimizer state and the batches live: auto (cuda if torch sees a GPU, else
    # cpu) | cpu | cuda | cuda:N (mtlrec/device.py)
    device: str = "auto"
    # bfloat16: the forward and backward passes under autocast on the device (matrix products in
    # bfloat16); auto: bfloat16 where the hardware multiplies it natively (CUDA; CPUs with
    # AVX512-BF16 or AMX), else float32
    precision: Literal["auto", "float32", "bfloat16"] = "float32"
    # the train state goes to RUN/checkpoints/ every N steps and at each epoch's end (None: epoch ends only);
    # `mtlrec train --resume` continues from the latest
    checkpoint_every: int | None = Field(None, ge=1)
    keep_checkpoints: int = Field(2, ge=1)  # the newest ones kept while training (the last one after)

    _device = pydantic.field_validator("device")(device_setting)


class ExperimentConfig(_Strict):
    data: DataConfig = DataConfig()
    schema_: Schema | None = Field(None, alias="schema")
    model: ModelConfig = ModelConfig()
    weighting: WeightingConfig = WeightingConfig()
    train: TrainConfig = TrainConfig()
    fusion: FusionConfig | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) wherever two config dicts differ (``to_dict()`` form)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in [*old, *(k for k in new if k not in old)]:
            out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def parse_config(raw: dict[str, Any], where: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except pydantic.ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                msg = "unknown key"
            lines.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError(f"{where}: " + "; ".join(lines)) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; the value is parsed as YAML (``1e-3``, ``[64, 32]``, ``true``)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, list(overrides)), where=str(path))
