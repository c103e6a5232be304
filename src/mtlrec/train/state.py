"""The train state: everything the next training step depends on, in one object that saves and
loads itself (``state_dict`` / ``load_state_dict``), so that a run stopped at any step boundary and
resumed from a checkpoint continues exactly as if it had not stopped.

It holds (or reaches) the model (its weights, and the transient accumulators it keeps in
non-persistent buffers, such as the gates' utilisation sums), the loss-weighting method's state,
both optimizers (the dense one and the row-wise Adam of the embedding tables, with its step
counter and per-row bookkeeping), the learning rate (in the optimizers' groups), where training
stands (epochs done, steps done in the current epoch), the shuffle generator (and its state at the
start of the current epoch, from which the epoch's order is drawn again), torch's global generator
(dropout, RLW, PCGrad) and on a GPU the device's (dropout there), numpy's and Python's global
generators, the current epoch's running sums, and every callback's state (early stopping's best
score, weights and patience; the history so far; the conflict measurements of the epoch)."""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from mtlrec.device import module_device
from mtlrec.models.base import MultiTaskModel
from mtlrec.train.callbacks import Callback
from mtlrec.train.optim import Optimizers
from mtlrec.weighting.base import LossWeighting


class TrainState:
    def __init__(
        self,
        model: MultiTaskModel,
        weighting: LossWeighting,
        optimizers: Optimizers,
        callbacks: Sequence[Callback],
        seed: int,
    ) -> None:
        self.model, self.weighting, self.optimizers, self.callbacks = model, weighting, optimizers, list(callbacks)
        self.generator = torch.Generator().manual_seed(seed)  # the order of the training rows (on the CPU, with them)
        self.epoch_start: Tensor | None = None  # the generator's state when the current epoch began
        self.epoch = 0  # epochs finished
        self.step = 0  # steps done in the current epoch
        self.global_step = 0
        self.stop = False
        self.elapsed = 0.0  # seconds spent on the current epoch before the last checkpoint
        self.device = module_device(model)  # the running sums stay beside the losses (no sync per step)
        names = [t.name for t in model.loss_tasks]
        self.loss_sums = {n: torch.zeros((), device=self.device) for n in names}
        self.absent = {n: torch.zeros((), dtype=torch.long, device=self.device) for n in names}

    def begin_epoch(self) -> None:
        """Remember where the shuffle generator stands and clear the running sums (a new epoch)."""
        self.epoch_start = self.generator.get_state()
        self.elapsed = 0.0
        for n in self.loss_sums:
            self.loss_sums[n] = torch.zeros((), device=self.device)
            self.absent[n] = torch.zeros((), dtype=torch.long, device=self.device)

    def rewind_epoch(self) -> None:
        """A resumed epoch: the shuffle generator back where the epoch began, so the same order is drawn."""
        self.generator.set_state(self.epoch_start)

    def add_losses(self, losses: dict[str, Tensor], present: Tensor) -> None:
        """Add one step's task losses and which tasks had rows (``present``, [T] bool) to the sums."""
        for i, (name, loss) in enumerate(losses.items()):
            self.loss_sums[name] += loss.detach()
            self.absent[name] += ~present[i]

    def _transient_buffers(self) -> dict[str, Tensor]:
        """The model's non-persistent buffers (accumulators outside its state_dict)."""
        persistent = set(self.model.state_dict())
        return {n: b for n, b in self.model.named_buffers() if n not in persistent}

    def state_dict(self) -> dict[str, Any]:
        return {
            "progress": {"epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                         "stop": self.stop, "elapsed": self.elapsed},  # fmt: skip
            "model": self.model.state_dict(),
            "buffers": self._transient_buffers(),
            "weighting": self.weighting.state_dict(),
            "optimizers": self.optimizers.state_dict(),
            "rng": {
                "shuffle": self.generator.get_state(),
                "epoch_start": self.epoch_start,
                "torch": torch.get_rng_state(),
                **({"cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            "sums": {"loss": self.loss_sums, "absent": self.absent},
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = state["progress"]
        self.epoch, self.step, self.global_step = p["epoch"], p["step"], p["global_step"]
        self.stop, self.elapsed = p["stop"], p["elapsed"]
        self.model.load_state_dict(state["model"])
        buffers = self._transient_buffers()
        for name, value in state["buffers"].items():
            buffers[name].copy_(value)
        self.weighting.load_state_dict(state["weighting"])
        self.optimizers.load_state_dict(state["optimizers"])
        rng = state["rng"]
        self.generator.set_state(rng["shuffle"])
        self.epoch_start = rng["epoch_start"]
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and "cuda" in rng:  # dropout on a GPU draws from the device's generator
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self.loss_sums = {n: v.to(self.device, copy=True) for n, v in state["sums"]["loss"].items()}
        self.absent = {n: v.to(self.device, copy=True) for n, v in state["sums"]["absent"].items()}
        for cb in self.callbacks:
            cb.load_state_dict(state["callbacks"].get(type(cb).__name__, {}))
