"""The training loop, and nothing else: per-epoch work (progress, history, checkpoints, early
stopping) lives in callbacks. The loop never branches on which model or weighting it runs."""

from __future__ import annotations

import time
from typing import Sequence

import torch

from mtlrec.config import TrainConfig
from mtlrec.data.batches import EncodedData, TensorBatch
from mtlrec.evaluation import evaluate_model, predict
from mtlrec.losses import task_losses
from mtlrec.models.base import MultiTaskModel
from mtlrec.train.callbacks import Callback
from mtlrec.train.optim import Optimizers
from mtlrec.weighting.base import LossWeighting


def training_losses(model: MultiTaskModel, batch: TensorBatch) -> dict[str, torch.Tensor]:
    """{output: loss} for every output in ``model.loss_tasks``, each masked to its sample space,
    plus the model's auxiliary terms (e.g. AITM's calibrator) added to the outputs they name."""
    out = model(batch)
    losses = task_losses(model.loss_tasks, out, model.with_derived(batch))
    for name, term in model.auxiliary_losses(out, batch).items():
        losses[name] = losses[name] + term
    return losses


class Trainer:
    def __init__(
        self,
        model: MultiTaskModel,
        weighting: LossWeighting,
        cfg: TrainConfig,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.model = model
        self.weighting = weighting
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.stop = False
        self.epoch = 0
        self.shared = model.shared()  # shared parameters, and the shared representation of each step
        self.optimizer: Optimizers | None = None  # opened by fit()

    def fit(self, train: EncodedData, valid: EncodedData) -> None:
        self.optimizer = Optimizers(self.model, [*self.weighting.parameters()], self.cfg)
        try:
            self._fit(train, valid)
        finally:
            self.optimizer.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)

    def _losses(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.precision == "bfloat16"):
            return training_losses(self.model, batch)

    def train_step(self, batch: TensorBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """One optimisation step on ``batch`` (inside ``fit``, which opens ``self.optimizer``):
        (the task losses, the weighting's stats)."""
        self.optimizer.zero_grad()
        losses = self._losses(batch)
        stats = self.weighting.backward(losses, self.shared)
        self.optimizer.step()
        self.weighting.after_step(lambda: self._losses(batch))
        return losses, stats

    def _fit(self, train: EncodedData, valid: EncodedData) -> None:
        cfg, model, tasks = self.cfg, self.model, self.model.loss_tasks
        generator = torch.Generator().manual_seed(cfg.seed)
        steps = -(-len(train) // cfg.batch_size)
        for epoch in range(1, cfg.epochs + 1):
            self.epoch = epoch
            start = time.perf_counter()
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch, steps)
            model.train()
            sums = {t.name: torch.zeros(()) for t in tasks}
            for step, batch in enumerate(train.batches(cfg.batch_size, shuffle=True, generator=generator)):
                losses, stats = self.train_step(batch)
                for name, loss in losses.items():
                    sums[name] += loss.detach()
                for cb in self.callbacks:
                    cb.on_step(self, step, losses, stats, batch)
            self.optimizer.flush()  # the tables as dense Adam would have them, before evaluating and saving
            train_loss = {name: float(s) / steps for name, s in sums.items()}
            self.weighting.on_epoch_end(epoch, train_loss)
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "weights": self.weighting.weights(),
                "valid": evaluate_model(model, predict(model, valid, cfg.eval_batch_size), valid),
                "seconds": round(time.perf_counter() - start, 3),
                "samples_per_s": round(len(train) / (time.perf_counter() - start), 1),
                **model.epoch_stats(),  # e.g. {"experts": {gate: {expert: mean weight}}}
            }
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            if self.stop:
                break
            if cfg.lr_decay != 1.0:
                self.optimizer.scale_lr(cfg.lr_decay)
