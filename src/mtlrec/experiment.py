"""One experiment end to end: source -> schema -> split -> encoder -> model -> training ->
metrics -> run directory."""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import torch
import yaml

from mtlrec.artifacts import (
    COUNTS,
    DIAGNOSTICS,
    LOCK,
    REPORT,
    RUN_JSON,
    begin_run,
    complete_run,
    read_json,
    run_lock,
    save_tensors,
    write_json,
    write_text,
)
from mtlrec.config import ExperimentConfig, differences
from mtlrec.data.batches import EncodedData
from mtlrec.data.columns import RowOrigin, require_columns
from mtlrec.data.encode import Encoder
from mtlrec.data.fingerprint import data_fingerprint
from mtlrec.data.join import FOLDER as SIDE_FOLDER
from mtlrec.data.join import MANIFEST as SIDE_MANIFEST
from mtlrec.data.join import Joiner
from mtlrec.data.pieces import read_piece
from mtlrec.data.sources import load_source
from mtlrec.data.stream import StreamData, open_splits, streams
from mtlrec.device import resolve_device
from mtlrec.distributed import SINGLE, World, env_local_rank, env_world_size, joined
from mtlrec.errors import ConfigError, MtlrecError, RunError
from mtlrec.evaluation import ORACLE_PREFIX, Scored, diagnostics, score_split
from mtlrec.models import MultiTaskModel, build_model
from mtlrec.spec import Schema
from mtlrec.progress import Progress
from mtlrec.train.callbacks import EarlyStopping, EpochProgress, History
from mtlrec.train.checkpoints import latest_checkpoint, load_checkpoint, prune, save_checkpoint
from mtlrec.train.conflict import ConflictMonitor
from mtlrec.train.monitor import resolve_monitor, single_class_warnings
from mtlrec.train.state import TrainState
from mtlrec.train.trainer import Trainer
from mtlrec.train.warm_start import Parent
from mtlrec.weighting import LossWeighting, build_weighting

# keys of the config that a resumed run may change: they do not change what it computes (the
# thread count may: it can change the order of floating-point sums)
RESUME_MAY_CHANGE = ("train.progress", "train.checkpoint_every", "train.keep_checkpoints")
PARENT = "parent.json"  # a warm-started run's parent, written when it begins (for --resume before a checkpoint)


@dataclass
class Prepared:
    """The experiment's data, split and encoded."""

    schema: Schema
    tables: dict[str, pa.Table] | None  # the raw rows of each split (None: streamed)
    encoder: Encoder
    encoded: dict[str, EncodedData | StreamData]
    fingerprint: dict[str, Any]  # the data files, taken before they were read (data/fingerprint.py)
    joiner: Joiner | None = None  # the side tables of data.join, kept in the run directory


def resolve_schema(cfg: ExperimentConfig, default: Schema | None) -> Schema:
    schema = cfg.schema_ or default
    if schema is None:
        raise ConfigError(f"schema: required, since data source '{cfg.data.source}' has no default schema")
    return schema


def load_data(
    cfg: ExperimentConfig, joiner: Joiner | None = None
) -> tuple[Schema, dict[str, pa.Table], dict[str, RowOrigin]]:
    """The schema, the train/valid/test tables (a data set's own splits first), and where the rows
    of each come from, so that errors name a row by its file and row there. The side tables of
    ``data.join`` (or ``joiner``'s, e.g. a run's) are joined onto the rows before they are split."""
    source = load_source(cfg.data)
    schema = resolve_schema(cfg, source.schema)
    joiner = joiner or Joiner.from_config(cfg.data.join)
    if joiner is not None:
        joiner.check(schema.features)
        source = joiner.join_source(source)
    require_columns(source.table, schema.columns(), source.name)
    tables, origins = source.split(cfg.data.split)
    return schema, tables, origins


def load_splits(cfg: ExperimentConfig) -> tuple[Schema, dict[str, pa.Table]]:
    """``load_data`` without the rows' origins."""
    schema, tables, _ = load_data(cfg)
    return schema, tables


def prepare(
    cfg: ExperimentConfig, encoder: Encoder | None = None, grow: Encoder | None = None, world: World = SINGLE
) -> Prepared:
    """Load, split and encode the data. ``encoder``: one already fitted (a resumed run's), used as
    it is; ``grow``: a parent run's, grown by the train split (a warm start); neither: fit anew.
    A binary task with one class in a split is a warning (its AUC there is undefined). A stream's
    pass over the data is shared by the processes of ``world`` (data/stream.py)."""
    fingerprint = data_fingerprint(cfg.data)
    joiner = Joiner.from_config(cfg.data.join)
    if streams(cfg.data):  # a directory or glob of files: read piece by piece (data/stream.py)
        schema = resolve_schema(cfg, None)
        if joiner is not None:
            joiner.check(schema.features)
        oracle = [ORACLE_PREFIX + t.name for t in schema.tasks]
        read = joiner.reader(read_piece) if joiner else read_piece
        encoder, encoded = open_splits(cfg.data, schema, encoder=encoder, grow=grow, extra=oracle, read=read,
                                       world=world)  # fmt: skip
        if joiner is not None and world.size > 1:  # each process counted the pieces it read
            totals = world.sum(torch.tensor([joiner.rows, *joiner.unmatched])).tolist()
            joiner.rows, joiner.unmatched = totals[0], totals[1:]
        tables = None
    else:
        schema, tables, origins = load_data(cfg, joiner)
        if encoder is None and grow is not None:
            encoder = grow.grow(tables["train"], where=origins["train"])
        elif encoder is None:
            encoder = Encoder(schema).fit(tables["train"], where=origins["train"])
        encoded = {name: encoder.transform(t, where=origins[name]) for name, t in tables.items()}
    fitted = {t.name: t.n_classes for t in encoder.schema.tasks if t.n_classes is not None}
    schema = schema.with_n_classes({t.name: fitted[t.name] for t in schema.tasks if t.n_classes is None
                                    and t.name in fitted})  # fmt: skip
    lines = joiner.report() if joiner else []  # counted as the rows were read once (a stream: by its scan)
    lines += single_class_warnings(schema.tasks, encoded, resolve_monitor(cfg.train.monitor, schema.tasks))
    for line in lines:
        warnings.warn(line, stacklevel=2)
    return Prepared(schema, tables, encoder, encoded, fingerprint, joiner)


def refuse_used_dir(out: Path, overwrite: bool) -> None:
    """A RunError for a run directory that has files, unless ``overwrite``. Called under
    ``run_lock``, which made the directory."""
    if not overwrite and any(p.name != LOCK for p in out.iterdir()):
        raise RunError(f"{out}: already exists and is not empty; choose another --out or pass --overwrite")


def clear_earlier_run(out: Path) -> None:
    """Remove the files of an earlier run, run.json first: from then on the directory is not a
    complete run. Called once the new run's data and config are known good, so that a run that
    fails to start leaves the earlier one whole."""
    if any(p.name != LOCK for p in out.iterdir()):
        begin_run(out)
        for name in ("history.jsonl", "metrics.json", DIAGNOSTICS, REPORT, "model.safetensors", "weighting.safetensors",
                     PARENT, SIDE_MANIFEST):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / SIDE_FOLDER, ignore_errors=True)
        prune(out, keep=0)


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    data: Prepared | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    reset_optimizer: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train and evaluate; write the run directory; return metrics.json's content.

    ``resume``: continue from ``out``'s latest checkpoint, with the config the run started with
    (a ConfigError names the key that differs); without a checkpoint, start afresh (saying so);
    a complete run is left as it is. ``init_from``: a warm start from that complete run (its
    weights, optimizer state unless ``reset_optimizer``, and grown vocabularies; see
    ``train/warm_start.py``) on ``cfg``'s data. ``data``: prepared already (a grid encodes once);
    not with ``resume`` or ``init_from``, whose encoder comes from a run directory. ``progress``:
    where the epochs and what the run does are reported (default: a bar on a terminal, else lines).

    Under torchrun (distributed.py) every process calls this: all train and evaluate one model,
    rank 0 alone holds, reads and writes ``out`` and returns the metrics; the others return {}. A
    resumed or warm-started run's other processes read its checkpoint or the parent run too, so
    those must be on a filesystem every node sees."""
    if data is not None and (resume or init_from is not None):
        raise ValueError("run_experiment: data= cannot be given with resume or init_from (the encoder is the run's)")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if env_world_size() > 1 and ":" in cfg.train.device:
        raise ConfigError(f"train.device: {cfg.train.device!r} under torchrun, where each process takes the GPU of "
                          f"its LOCAL_RANK; use cuda (or auto)")  # fmt: skip
    device = resolve_device(cfg.train.device, local_rank=env_local_rank())  # a missing GPU: an error now
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it: choose one")
    with joined(device) as world, _rank_quiet(world):
        progress = progress if progress is not None else Progress.auto()
        return _run(world, cfg, Path(out), overwrite, data, resume, init_from, reset_optimizer,
                    progress if world.main else Progress("quiet"))  # fmt: skip


@contextlib.contextmanager
def _rank_quiet(world: World):
    """Warnings from rank 0 only (the others would repeat them)."""
    with warnings.catch_warnings():
        if not world.main:
            warnings.simplefilter("ignore")
        yield


def _run(
    world: World, cfg: ExperimentConfig, out: Path, overwrite: bool, data: Prepared | None, resume: bool,
    init_from: str | Path | None, reset_optimizer: bool, progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    """run_experiment in this process (rank 0 writes: see there)."""
    with progress, run_lock(out) if world.main else contextlib.nullcontext():  # one writer; no bar outlives the run
        log = progress.line
        if world.size > 1:
            log(f"{out}: {world.size} processes train one model ({world.backend} on {world.device.type})")
        if _decided(world, lambda: resume and (out / RUN_JSON).is_file()):
            log(f"{out}: the run is complete; nothing to resume")
            return read_json(out / "metrics.json") if world.main else {}
        latest = _decided(world, lambda: str(latest_checkpoint(out) or "") if resume else "")
        if latest:
            return _resume(world, out, cfg, Path(latest), progress, init_from)
        if resume:
            init_from, reset_optimizer = _decided(world, lambda: _restart(out, init_from, reset_optimizer, log))
        parent = Parent.load(init_from) if init_from is not None else None
        if parent is not None and parent.path.resolve() == out.resolve():
            raise ConfigError(f"--init-from {init_from}: that is --out itself; a warm start writes a new run directory")
        _decided(world, lambda: refuse_used_dir(out, overwrite or resume))
        if data is None:
            with progress.bar("reading and encoding the data", unit=None):
                data = prepare(cfg, grow=parent.encoder if parent else None, world=world)
        start = Start(cfg, data, parent=parent.lineage if parent else None)
        if parent is not None:
            parent.check(start.resolved)
        start.built  # a model or weighting that cannot be built fails here, before the earlier run goes
        restore = None
        if parent is not None:
            layout = data.encoder.layout()
            restore = lambda state: parent.restore(state, layout, reset_optimizer=reset_optimizer)  # noqa: E731
            log(f"{out}: starting from {parent.path} ({_growth(parent.encoder, data.encoder)})")
        if world.main:
            _begin(out, start, parent, reset_optimizer)
        return _train_into(world, out, start, progress, restore)


def _decided(world: World, decide: Callable[[], Any]) -> Any:
    """``decide()`` on rank 0, which alone reads ``out``, and its answer (JSON: a value, or the
    error it raised, raised in every process) in every process."""
    if world.size == 1:
        return decide()
    outcome = None
    if world.main:
        try:
            outcome = {"value": decide()}
        except MtlrecError as err:
            outcome = {"error": type(err).__name__, "message": str(err)}
    outcome = world.agree(outcome)  # (a RunError or ConfigError by its message: the others print nothing)
    if "error" in outcome:
        raise (ConfigError if outcome["error"] == "ConfigError" else RunError)(outcome["message"])
    return outcome["value"]


def _begin(out: Path, start: Start, parent: Parent | None, reset_optimizer: bool) -> None:
    """Clear an earlier run from ``out`` and write what the new one begins with."""
    clear_earlier_run(out)
    if parent is not None:
        write_json(out / PARENT, {**parent.lineage, "reset_optimizer": reset_optimizer})
    write_text(out / "config.yaml", yaml.safe_dump(start.resolved, sort_keys=False))
    start.data.encoder.save(out / "encoder.json")
    start.data.encoder.save_counts(out / COUNTS)
    if start.data.joiner is not None:
        start.data.joiner.save(out)


def _restart(
    out: Path, init_from: str | Path | None, reset_optimizer: bool, log: Callable[[str], None]
) -> tuple[str | Path | None, bool]:
    """A resumed run with no checkpoint yet starts afresh, from the run it was started from, if any
    (PARENT, written when it began): (init_from, reset_optimizer) for the new start."""
    started = read_json(out / PARENT) if (out / PARENT).is_file() else None
    if started is not None and init_from is not None and Path(init_from).resolve() != Path(started["run"]):
        raise ConfigError(f"--init-from {init_from}: the run in {out} started from {started['run']}")
    if started is not None:
        init_from, reset_optimizer = started["run"], started["reset_optimizer"]
    log(f"{out}: no checkpoint to resume from; starting afresh" + (f" from {init_from}" if init_from else ""))
    return (str(init_from) if init_from is not None else None), reset_optimizer


def _growth(old: Encoder, new: Encoder) -> str:
    """How many ids each vocabulary gained, for the log."""
    grown = {name: len(v) - len(old.vocabs_[name]) for name, v in new.vocabs_.items()}
    return "new ids: " + (", ".join(f"{name} +{n}" for name, n in grown.items() if n) or "none")


def _resume(
    world: World, out: Path, cfg: ExperimentConfig, latest: Path, progress: Progress, init_from: str | Path | None
) -> dict[str, Any]:
    saved = load_checkpoint(latest)
    meta = saved["run"]
    started_from = (meta.get("parent") or {}).get("run")
    if init_from is not None and str(Path(init_from).resolve()) != started_from:
        raise ConfigError(f"--init-from {init_from}: the run in {out} started from {started_from or 'scratch'}")
    with progress.bar("reading and encoding the data", unit=None):
        data = prepare(cfg, encoder=Encoder.load(out / "encoder.json"), world=world)
    start = Start(cfg, data, parent=meta.get("parent"))
    changed = [d for d in differences(meta["config"], start.resolved) if d[0] not in RESUME_MAY_CHANGE]
    if changed:
        key, was, now = changed[0]
        raise ConfigError(
            f"{key}: {now!r} here but {was!r} in the run being resumed ({out}); a run resumes with the config "
            f"it started with (only {', '.join(RESUME_MAY_CHANGE)} may change)"
        )
    if meta["data"] != data.fingerprint:
        raise ConfigError(f"data: {cfg.data.path or cfg.data.source} is not the data the run in {out} started on "
                          f"(files, sizes or contents changed)")  # fmt: skip
    at = saved["train"]["progress"]
    progress.line(f"{out}: resuming from {latest.name} (epoch {at['epoch'] + 1}, step {at['step']})")
    if meta.get("processes", 1) != world.size:
        warnings.warn(f"{out}: trained by {meta.get('processes', 1)} process(es), resumed by {world.size}: it "
                      f"continues, but not bit for bit as the run left alone would (the order of sums changes)",
                      stacklevel=2)  # fmt: skip
    return _train_into(world, out, start, progress, restore=lambda state: state.load_state_dict(saved["train"]))


@dataclass
class Start:
    """How a run begins: its config and data, what it records in run.json, and what it builds."""

    cfg: ExperimentConfig
    data: Prepared
    parent: dict[str, Any] | None = None

    @property
    def resolved(self) -> dict[str, Any]:
        """The config with its schema resolved, as config.yaml and the checkpoints hold it."""
        return self.cfg.model_copy(update={"schema_": self.data.schema}).to_dict()

    @functools.cached_property
    def built(self) -> tuple[MultiTaskModel, LossWeighting, str]:
        """The model (initialised from train.seed), the weighting method and the resolved monitor."""
        torch.manual_seed(self.cfg.train.seed)
        tasks = self.data.schema.tasks
        model = build_model(self.cfg.model, self.data.encoder.layout(), tasks)
        weighting = build_weighting(self.cfg.weighting, model.loss_tasks)  # derived outputs (ESMM's pCTCVR) included
        return model, weighting, resolve_monitor(self.cfg.train.monitor, tasks)


class RunCheckpointer:
    """Saves the train state into RUN/checkpoints/ with what a resumed run checks against."""

    def __init__(self, out: Path, start: Start, processes: int = 1) -> None:
        self.out, self.every, self.keep = out, start.cfg.train.checkpoint_every, start.cfg.train.keep_checkpoints
        self.meta = {"config": start.resolved, "data": start.data.fingerprint, "parent": start.parent,
                     "processes": processes}  # fmt: skip

    def due(self, global_step: int) -> bool:
        return bool(self.every) and global_step % self.every == 0

    def save(self, state: TrainState) -> None:
        save_checkpoint(self.out, state.global_step, {"run": self.meta, "train": state.state_dict()}, keep=self.keep)


def _train_into(
    world: World, out: Path, start: Start, progress: Progress, restore: Callable[[TrainState], None] | None = None
) -> dict[str, Any]:
    """Train, save the weights and the metrics, then run.json (run_experiment's body once the
    directory is held and has its config and encoder). Processes other than rank 0 train only."""
    cfg, data = start.cfg, start.data
    model, weighting, monitor = start.built
    stopper = EarlyStopping(monitor, cfg.train.patience)
    callbacks = [ConflictMonitor(cfg.train.conflict_every), stopper]
    if world.main:  # the others write nothing
        callbacks.append(History(out / "history.jsonl"))
        if cfg.train.progress:
            callbacks.append(EpochProgress(progress))
    checkpointer = RunCheckpointer(out, start, world.size) if world.main else None
    trainer = Trainer(model, weighting, cfg.train, callbacks, checkpointer, world)
    trainer.fit(data.encoded["train"], data.encoded["valid"], restore=restore)
    if world.main:
        save_tensors(out / "model.safetensors", model.state_dict())
        state = weighting.state_dict()
        if state:
            save_tensors(out / "weighting.safetensors", state)

    metrics: dict[str, Any] = {"best_epoch": stopper.best_epoch, "monitor": monitor}
    oracle, scored = {}, {}
    for split in ("valid", "test"):  # every process scores its rows of each split
        table = data.tables[split] if data.tables is not None else None
        with progress.bar(f"evaluating on {split}", len(data.encoded[split])) as bar:
            scored[split] = score_split(model, data.encoded[split], cfg.train.eval_batch_size, table,
                                        cfg.train.exact_metric_rows, advance=bar.advance, world=world)  # fmt: skip
        metrics[split], oracle[split] = scored[split].evaluate(model) if world.main else ({}, None)
    if not world.main:
        return {}
    if all(o is not None for o in oracle.values()):
        metrics["oracle"] = oracle
    test = scored["test"]  # the report's calibration and residuals; a folded split keeps no scores for them
    folded = {"folded": len(data.encoded["test"])} if not isinstance(test, Scored) else {}
    write_json(out / DIAGNOSTICS, {"test": diagnostics(model, test) if isinstance(test, Scored) else {}, **folded})
    write_json(out / "metrics.json", metrics)
    prune(out, keep=1)  # the last checkpoint stays: a warm start takes its optimizer state
    (out / PARENT).unlink(missing_ok=True)  # run.json records the parent from now on
    complete_run(out, {"model": cfg.model.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                       "data": data.fingerprint, "parent": start.parent,
                       "trained_on": {**trainer.placement.record(),
                                      **({"processes": world.size} if world.size > 1 else {})}})  # fmt: skip
    return metrics
