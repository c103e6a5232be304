"""Per-step and per-epoch work around the training loop: progress, history, early stopping with
best-epoch restore.

An epoch ends in two phases, so that no callback can come too late for another: first every
callback's ``on_record`` adds what it knows to the epoch's record (the conflict measurements, the
early-stopping monitor) and may ask the trainer to stop; then every callback's ``on_epoch_end``
sees the finished record (History writes it, EpochProgress reports it). A callback that keeps state
across steps or epochs returns it from ``state_dict`` (tensors, numbers, lists and dicts), so that
a resumed run continues exactly; ``load_state_dict`` takes it back."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtlrec.artifacts import append_jsonl, to_json, write_text
from mtlrec.progress import NO_BAR, Progress
from mtlrec.train.monitor import better, monitored_value

if TYPE_CHECKING:
    from mtlrec.train.trainer import Trainer


class Callback:
    def on_epoch_start(self, trainer: "Trainer", epoch: int, steps: int) -> None: ...

    def on_step(
        self, trainer: "Trainer", step: int, losses: dict[str, Any], stats: dict[str, float], batch: Any
    ) -> None: ...

    def on_record(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        """Phase 1 of an epoch's end: add to ``record`` (and set ``trainer.stop``)."""

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        """Phase 2: ``record`` is complete."""

    def on_fit_end(self, trainer: "Trainer") -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EpochProgress(Callback):
    """Reports training to a ``Progress`` (mtlrec/progress.py): a bar over each epoch's steps with
    each task's running loss (on a terminal), and one line per epoch with its time and each task's
    validation metric (AUC where it has one), the line logs and CI have always shown."""

    def __init__(self, progress: Progress, every: int = 20) -> None:
        self.progress, self.every = progress, every
        self.bar = NO_BAR

    def on_epoch_start(self, trainer, epoch, steps):
        done = trainer.state.step  # a resumed epoch starts part-way
        self.bar = self.progress.bar(f"epoch {epoch}/{trainer.cfg.epochs}", steps, unit="steps", done=done)

    def on_step(self, trainer, step, losses, stats, batch):
        if self.bar.active and step % self.every == 0:  # reading a loss waits for it: only for a bar
            self.bar.note("  ".join(f"{k} {float(v.detach()):.4f}" for k, v in losses.items()))
        self.bar.advance(1)

    def on_epoch_end(self, trainer, record):
        self.bar.close()
        self.bar = NO_BAR
        shown = {t: m.get("auc", next(iter(m.values()), math.nan)) for t, m in record["valid"].items()}
        line = "  ".join(f"{t} {v:.4f}" for t, v in shown.items())
        self.progress.line(f"epoch {record['epoch']}: {record['seconds']:.1f}s  valid {line}")


class History(Callback):
    """Appends each epoch's record to history.jsonl. Its state is the records written so far: a
    resumed run writes the file again from them, dropping any line of an epoch it repeats."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer, record):
        append_jsonl(self.path, record)
        self.records.append(record)

    def state_dict(self) -> dict[str, Any]:
        return {"records": [to_json(r) for r in self.records]}  # JSON text: exactly what the file holds

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import json

        self.records = [json.loads(r) for r in state["records"]]
        write_text(self.path, "".join(r + "\n" for r in state["records"]))


class EarlyStopping(Callback):
    """Keeps the best epoch by the monitored validation metric, stops after ``patience`` epochs
    without improvement, restores the best weights at the end, and marks the record with the
    monitored value."""

    def __init__(self, monitor: str, patience: int) -> None:
        self.monitor = monitor
        self.patience = patience
        self.best = -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, Any] | None = None
        self.waited = 0

    def on_record(self, trainer, record):
        value = monitored_value(self.monitor, record["valid"])
        record["monitor"] = {self.monitor: value}
        if self.best_state is None or better(value, self.best):
            self.best, self.best_epoch, self.waited = value, record["epoch"], 0
            self.best_state = copy.deepcopy(trainer.model.state_dict())
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.stop = True

    def on_fit_end(self, trainer):
        if self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.waited = state["best"], state["best_epoch"], state["waited"]
        self.best_state = state["best_state"]
