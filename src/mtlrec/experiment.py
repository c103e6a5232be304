"""One experiment end to end: source -> schema -> split -> encoder -> model -> training ->
metrics -> run directory."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
import yaml

import mtlrec
from mtlrec.artifacts import FORMAT, LOCK, run_lock, save_tensors, write_json, write_text
from mtlrec.config import ExperimentConfig
from mtlrec.data.batches import EncodedData
from mtlrec.data.columns import RowOrigin, require_columns
from mtlrec.data.encode import Encoder
from mtlrec.data.sources import load_source
from mtlrec.errors import ConfigError, RunError
from mtlrec.evaluation import evaluate_model, oracle_predictions, predict
from mtlrec.models import MultiTaskModel, build_model
from mtlrec.spec import Schema
from mtlrec.train.callbacks import Checkpoint, EarlyStopping, History, Progress
from mtlrec.train.conflict import ConflictMonitor
from mtlrec.train.monitor import resolve_monitor, single_class_warnings
from mtlrec.train.trainer import Trainer
from mtlrec.weighting import LossWeighting, build_weighting


@dataclass
class Prepared:
    """The experiment's data, split and encoded."""

    schema: Schema
    tables: dict[str, pa.Table]
    encoder: Encoder
    encoded: dict[str, EncodedData]


def resolve_schema(cfg: ExperimentConfig, default: Schema | None) -> Schema:
    schema = cfg.schema_ or default
    if schema is None:
        raise ConfigError(f"schema: required, since data source '{cfg.data.source}' has no default schema")
    return schema


def load_data(cfg: ExperimentConfig) -> tuple[Schema, dict[str, pa.Table], dict[str, RowOrigin]]:
    """The schema, the train/valid/test tables (a data set's own splits first), and where the rows
    of each come from, so that errors name a row by its file and row there."""
    source = load_source(cfg.data)
    schema = resolve_schema(cfg, source.schema)
    require_columns(source.table, schema.columns(), source.name)
    tables, origins = source.split(cfg.data.split)
    return schema, tables, origins


def load_splits(cfg: ExperimentConfig) -> tuple[Schema, dict[str, pa.Table]]:
    """``load_data`` without the rows' origins."""
    schema, tables, _ = load_data(cfg)
    return schema, tables


def prepare(cfg: ExperimentConfig) -> Prepared:
    """Load, split and encode the data. A binary task with one class in a split is a warning (its
    AUC there is undefined)."""
    schema, tables, origins = load_data(cfg)
    encoder = Encoder(schema).fit(tables["train"], where=origins["train"])
    encoded = {name: encoder.transform(t, where=origins[name]) for name, t in tables.items()}
    for line in single_class_warnings(schema.tasks, encoded, resolve_monitor(cfg.train.monitor, schema.tasks)):
        warnings.warn(line, stacklevel=2)
    return Prepared(schema, tables, encoder, encoded)


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse a run directory that has files unless ``overwrite``; then remove the files a run
    appends to or may not write again. Called under ``run_lock``, which made the directory."""
    if any(p.name != LOCK for p in out.iterdir()):
        if not overwrite:
            raise RunError(f"{out}: already exists and is not empty; choose another --out or pass --overwrite")
        for name in ("history.jsonl", "metrics.json", "checkpoint.safetensors", "weighting.safetensors"):
            (out / name).unlink(missing_ok=True)


def run_experiment(
    cfg: ExperimentConfig, out: str | Path, *, overwrite: bool = False, data: Prepared | None = None
) -> dict[str, Any]:
    """Train and evaluate; write the run directory; return metrics.json's content."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data = data or prepare(cfg)
    tasks = data.schema.tasks
    monitor = resolve_monitor(cfg.train.monitor, tasks)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, data.encoder.layout(), tasks)
    weighting = build_weighting(cfg.weighting, model.loss_tasks)  # derived outputs (ESMM's pCTCVR) included
    out = Path(out)
    with run_lock(out):  # one writer at a time
        prepare_run_dir(out, overwrite)
        return _train_into(out, cfg, data, model, weighting, monitor)


def _train_into(
    out: Path, cfg: ExperimentConfig, data: Prepared, model: MultiTaskModel, weighting: LossWeighting, monitor: str
) -> dict[str, Any]:
    """Write the run's config and encoder, train, save the weights and the metrics (run_experiment's
    body once the directory is held)."""
    tasks = data.schema.tasks
    resolved = cfg.model_copy(update={"schema_": data.schema})
    write_json(out / "run.json", {"format": FORMAT, "mtlrec": mtlrec.__version__, "model": cfg.model.name,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    write_text(out / "config.yaml", yaml.safe_dump(resolved.to_dict(), sort_keys=False))
    data.encoder.save(out / "encoder.json")

    stopper = EarlyStopping(monitor, cfg.train.patience)
    # the conflict monitor adds its measurements to the epoch record before History writes it
    callbacks = [ConflictMonitor(cfg.train.conflict_every), History(out / "history.jsonl"), Checkpoint(out), stopper]
    if cfg.train.progress:
        callbacks.append(Progress())
    Trainer(model, weighting, cfg.train, callbacks).fit(data.encoded["train"], data.encoded["valid"])
    save_tensors(out / "model.safetensors", model.state_dict())

    metrics: dict[str, Any] = {"best_epoch": stopper.best_epoch, "monitor": monitor}
    for split in ("valid", "test"):
        enc = data.encoded[split]
        metrics[split] = evaluate_model(model, predict(model, enc, cfg.train.eval_batch_size), enc)
    oracle = {s: oracle_predictions(data.tables[s], tasks) for s in ("valid", "test")}
    if all(p is not None for p in oracle.values()):
        metrics["oracle"] = {s: evaluate_model(model, oracle[s], data.encoded[s]) for s in oracle}
    write_json(out / "metrics.json", metrics)
    return metrics
