"""Per-step and per-epoch work around the training loop: progress bar, history, checkpoints,
early stopping with best-epoch restore."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtlrec.artifacts import append_jsonl, save_tensors
from mtlrec.train.monitor import better, monitored_value

if TYPE_CHECKING:
    from mtlrec.train.trainer import Trainer


class Callback:
    def on_epoch_start(self, trainer: "Trainer", epoch: int, steps: int) -> None: ...

    def on_step(
        self, trainer: "Trainer", step: int, losses: dict[str, Any], stats: dict[str, float], batch: Any
    ) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", record: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: "Trainer") -> None: ...


class Progress(Callback):
    """A tqdm bar per epoch showing each task's running loss."""

    def __init__(self, every: int = 20) -> None:
        self.every = every
        self.bar = None

    def on_epoch_start(self, trainer, epoch, steps):
        from tqdm import tqdm

        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{trainer.cfg.epochs}", file=sys.stderr, leave=False, disable=None)

    def on_step(self, trainer, step, losses, stats, batch):
        if step % self.every == 0:
            self.bar.set_postfix({k: f"{float(v.detach()):.4f}" for k, v in losses.items()}, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, trainer, record):
        self.bar.close()
        shown = {t: m.get("auc", next(iter(m.values()), math.nan)) for t, m in record["valid"].items()}
        line = "  ".join(f"{t} {v:.4f}" for t, v in shown.items())
        print(f"epoch {record['epoch']}: {record['seconds']:.1f}s  valid {line}", file=sys.stderr)


class History(Callback):
    """Appends each epoch's record to history.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, trainer, record):
        append_jsonl(self.path, record)


class Checkpoint(Callback):
    """Writes the latest epoch's model and weighting state atomically."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_epoch_end(self, trainer, record):
        save_tensors(self.run_dir / "checkpoint.safetensors", trainer.model.state_dict())
        state = trainer.weighting.state_dict()
        if state:
            save_tensors(self.run_dir / "weighting.safetensors", state)


class EarlyStopping(Callback):
    """Keeps the best epoch by the monitored validation metric, stops after ``patience`` epochs
    without improvement, restores the best weights at the end, and marks the best record."""

    def __init__(self, monitor: str, patience: int) -> None:
        self.monitor = monitor
        self.patience = patience
        self.best = -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, Any] | None = None
        self.waited = 0

    def on_epoch_end(self, trainer, record):
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
