"""The gradient-conflict monitor: how much the tasks pull the shared parameters apart.

Every ``every`` steps (default: each epoch's last step) it takes each task's gradient on the shared
parameters (the embedding table included) for the current batch, and records in the epoch's
history record, under ``conflict``, a list of
``{"step", "cosine": {"a/b": cos(g_a, g_b)}, "grad_norm": {task: |g|}, "weights": {task: w}}``.
A negative cosine means the two tasks want opposite changes to the shared part.

Cost: one forward and T backward passes per measurement; the measurement is taken after the
step's update and leaves the parameters' gradients and the random number generator as they were.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mtlrec.device import module_device
from mtlrec.train.callbacks import Callback
from mtlrec.weighting._grads import cosine_matrix, parameter_gradients


def conflict_stats(grads: Tensor, names: list[str]) -> dict[str, Any]:
    """[T, P] task gradients -> pairwise cosine similarities and norms (None where undefined)."""
    cos = cosine_matrix(grads).tolist()
    norms = grads.double().norm(dim=1).tolist()
    pairs = {
        f"{a}/{b}": _finite(cos[i][j]) for i, a in enumerate(names) for j, b in enumerate(names) if i < j
    }
    return {"cosine": pairs, "grad_norm": dict(zip(names, norms))}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class ConflictMonitor(Callback):
    """``every``: measure every N training steps (counted over the whole run); None: at each
    epoch's last step; 0: never."""

    def __init__(self, every: int | None = None) -> None:
        self.every = every
        self.steps = 0
        self.records: list[dict[str, Any]] = []  # the current epoch's measurements

    def on_epoch_start(self, trainer, epoch, steps):
        self.steps = steps
        if trainer.state.step == 0:  # not a resumed epoch
            self.records = []

    def on_step(self, trainer, step, losses, stats, batch):
        done = trainer.state.global_step  # steps over the whole run, this one included
        due = step == self.steps - 1 if self.every is None else bool(self.every) and done % self.every == 0
        if due:
            self.records.append({"step": done, **self.measure(trainer, batch)})

    def measure(self, trainer, batch) -> dict[str, Any]:
        model = trainer.model
        shared = [p for p in trainer.shared.parameters if p.requires_grad]  # found before the optimizers opened
        device = module_device(model)  # dropout here must not shift the training RNG (on a GPU: the device's)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            losses = trainer._losses(batch)  # the global batch's, with several processes (distributed.py)
        names = list(losses)
        grads = trainer.world.sum(parameter_gradients([losses[n] for n in names], shared)) / trainer.world.size
        return {**conflict_stats(grads, names), "weights": trainer.weighting.weights()}

    def on_record(self, trainer, record):
        if self.every != 0:
            record["conflict"] = self.records

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = list(state.get("records", []))
