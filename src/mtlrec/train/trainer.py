"""The training loop, and nothing else: per-epoch work (progress, history, early stopping) lives in
callbacks, everything a step depends on in the train state (``state.py``), which a checkpointer
saves every ``train.checkpoint_every`` steps and at each epoch's end. The loop never branches on
which model or weighting it runs."""

from __future__ import annotations

import time
from typing import Callable, Protocol, Sequence

import torch

from mtlrec.config import TrainConfig
from mtlrec.data.batches import EncodedData, TensorBatch
from mtlrec.device import Placement
from mtlrec.distributed import SINGLE, World
from mtlrec.evaluation import score_split
from mtlrec.losses import task_losses
from mtlrec.models.base import MultiTaskModel
from mtlrec.train.callbacks import Callback
from mtlrec.train.optim import Optimizers
from mtlrec.train.state import TrainState
from mtlrec.weighting.base import LossWeighting, present


def loss_rows(model: MultiTaskModel, batch: TensorBatch) -> torch.Tensor:
    """[T] how many rows of ``batch`` each loss task's mean is over (its sample space)."""
    masks = model.with_derived(batch).masks
    return torch.stack([masks[t.name].sum() for t in model.loss_tasks])


def training_losses(model: MultiTaskModel, batch: TensorBatch) -> dict[str, torch.Tensor]:
    """{output: loss} for every output in ``model.loss_tasks``, each masked to its sample space,
    plus the model's auxiliary terms (e.g. AITM's calibrator) added to the outputs they name."""
    out = model(batch)
    losses = task_losses(model.loss_tasks, out, model.with_derived(batch))
    for name, term in model.auxiliary_losses(out, batch).items():
        losses[name] = losses[name] + term
    return losses


class Checkpointer(Protocol):
    """Saves the train state: ``due(global_step)`` says whether a step's end is a checkpoint."""

    def due(self, global_step: int) -> bool: ...

    def save(self, state: TrainState) -> None: ...


class Trainer:
    def __init__(
        self,
        model: MultiTaskModel,
        weighting: LossWeighting,
        cfg: TrainConfig,
        callbacks: Sequence[Callback] = (),
        checkpointer: Checkpointer | None = None,
        world: World = SINGLE,
    ) -> None:
        self.world = world  # the processes training this model together (distributed.py)
        self.placement = Placement.resolve(cfg.device, cfg.precision, local_rank=world.local_rank)
        self.model = model.to(self.placement.device)
        self.weighting = weighting.to(self.placement.device)  # its parameters and buffers beside the model's
        self.weighting.world = world
        self.params = [p for p in [*model.parameters(), *weighting.parameters()] if p.requires_grad]
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.checkpointer = checkpointer
        self.shared = model.shared()  # shared parameters, and the shared representation of each step
        self.optimizer: Optimizers | None = None  # opened by fit()
        self.state: TrainState | None = None  # made by fit()

    @property
    def stop(self) -> bool:
        return self.state.stop

    @stop.setter
    def stop(self, value: bool) -> None:
        self.state.stop = value

    def fit(
        self, train: EncodedData, valid: EncodedData, *, restore: Callable[[TrainState], None] | None = None
    ) -> None:
        """Train; ``restore`` (e.g. a checkpoint's ``load_state_dict``) sets the state up first,
        once the optimizers are open."""
        self.optimizer = Optimizers(self.model, [*self.weighting.parameters()], self.cfg)
        self.state = TrainState(self.model, self.weighting, self.optimizer, self.callbacks, self.cfg.seed)
        try:
            if restore is not None:
                restore(self.state)
            self._fit(train, valid)
        finally:
            self.optimizer.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)

    def _losses(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        """The task losses of the global batch (this process's rows of it: distributed.py)."""
        with self.world.rank_rng(self.cfg.seed, self.state.global_step), self.placement.autocast():
            losses = training_losses(self.model, batch)
        return self.world.global_losses(losses, loss_rows(self.model, batch)) if self.world.size > 1 else losses

    def train_step(self, batch: TensorBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """One optimisation step on ``batch`` (inside ``fit``, which opens ``self.optimizer``):
        (the task losses, the weighting's stats)."""
        batch = batch.to(self.placement.device)  # (itself when it is there already)
        self.optimizer.zero_grad()
        losses = self._losses(batch)
        stats = self.weighting.backward(losses, self.shared)
        self.world.average_gradients(self.params)
        self.optimizer.step()
        self.weighting.after_step(lambda: self._losses(batch))
        return losses, stats

    def _fit(self, train: EncodedData, valid: EncodedData) -> None:
        cfg, model, s = self.cfg, self.model, self.state
        steps = -(-len(train) // cfg.batch_size)
        while s.epoch < cfg.epochs and not s.stop:
            epoch = s.epoch + 1
            if s.step == 0:
                s.begin_epoch()
            else:
                s.rewind_epoch()  # resumed part-way: draw the epoch's order again, skip what was done
            start = time.perf_counter() - s.elapsed
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch, steps)
            model.train()
            batches = train.batches(cfg.batch_size, shuffle=True, generator=s.generator, start=s.step,
                                    shard=self.world.shard)  # fmt: skip
            for batch in batches:
                batch = batch.to(self.placement.device)
                losses, stats = self.train_step(batch)
                s.add_losses(losses, present(torch.stack([v.detach() for v in losses.values()])))
                step = s.step
                s.step, s.global_step = step + 1, s.global_step + 1
                for cb in self.callbacks:
                    cb.on_step(self, step, losses, stats, batch)
                if self.checkpointer is not None and s.step < steps and self.checkpointer.due(s.global_step):
                    s.elapsed = time.perf_counter() - start
                    self.checkpointer.save(s)
            self.optimizer.flush()  # the tables as dense Adam would have them, before evaluating and saving
            train_loss = {name: float(v) / steps for name, v in s.loss_sums.items()}
            self.weighting.on_epoch_end(epoch, train_loss)
            scored = score_split(model, valid, cfg.eval_batch_size, exact_rows=cfg.exact_metric_rows, world=self.world)
            metrics = scored.evaluate(model)[0]
            seconds = time.perf_counter() - start
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "weights": self.weighting.weights(),
                "absent_batches": {name: int(v) for name, v in s.absent.items()},
                "valid": metrics,
                "seconds": round(seconds, 3),
                "samples_per_s": round(len(train) / seconds, 1),
                **model.epoch_stats(),  # e.g. {"experts": {gate: {expert: mean weight}}}
                **({"distributed": self.world.record()} if self.world.size > 1 else {}),
            }
            for cb in self.callbacks:  # phase 1: complete the record (and decide whether to stop)
                cb.on_record(self, record)
            s.stop = self.world.agree(s.stop)  # rank 0's decision for all (every process has the same metrics)
            for cb in self.callbacks:  # phase 2: the record is final
                cb.on_epoch_end(self, record)
            s.epoch, s.step = epoch, 0
            if cfg.lr_decay != 1.0 and not s.stop:
                self.optimizer.scale_lr(cfg.lr_decay)
            if self.checkpointer is not None:
                self.checkpointer.save(s)
