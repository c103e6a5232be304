"""One model trained by several processes (``torchrun``): which process this is, and the few
collective operations training needs, in one place. A single process is a world of size 1, where
every operation here returns its input untouched (no process group, no copies).

What makes N processes train the model one process would (train/trainer.py calls these):

- **Rows.** Every rank walks the same order of global batches (the same shuffle generator) and
  computes on its rows of each (``Shard``): in memory, every ``size``-th row of the batch from its
  ``rank`` on; in a stream, whose ranks encode only their own rows, those whose position in the
  epoch's sequence of rows is ``rank`` modulo ``size`` (so a rank's share of a batch varies, about
  batch / size, and may be empty). The step count is the same everywhere.
- **Losses** (``global_losses``). Each task's loss is a mean over the rows of its sample space in
  the *global* batch: a rank's local mean is scaled by its share of those rows times the world
  size, so that the gradients averaged over ranks equal the one-process gradient; its value is
  replaced by the global mean (an all-reduce of T sums and T counts), so that a weighting method
  sees the same losses on every rank and picks the same weights.
- **Gradients** (``average_gradients``): the gradients of the model and of the weighting method
  are averaged over ranks after the weighting's backward pass, in one flat all-reduce for the
  dense ones; an embedding table's sparse gradient is all-gathered (its rows and values, padded to
  the largest rank's), so that row-wise Adam updates the union of the rows the ranks touched, on
  gloo and NCCL alike. Not torch's DistributedDataParallel wrapper: the gradient methods take T
  per-task passes through ``autograd.grad`` or ``backward`` per step, which its hooks would
  reduce T times (or not at all); here the reduction happens once, after the method is done.
- **Task gradients** (``weighting/_grads.py``): a gradient method's Gram matrix is the global one
  (``global_gram``), so that MGDA, CAGrad, Nash-MTL, PCGrad and GradNorm decide alike everywhere.
- **Evaluation** (``evaluation.predict_shared``): each rank scores its rows of every chunk and all
  ranks gather every prediction, so all compute the same metrics; rank 0 writes them.
- **Random draws.** A weighting's draws (RLW, PCGrad) come from torch's global generator, which
  stays the same on every rank; dropout draws from a generator of its own per rank and step
  (``rank_rng``), so that ranks with different batch sizes do not fall out of step.

Backends: gloo on the CPU, NCCL on CUDA (one GPU per process, ``LOCAL_RANK``)."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


def env_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 outside it."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_local_rank() -> int | None:
    """This process's rank on its node (``LOCAL_RANK``: its GPU), None outside torchrun."""
    local = os.environ.get("LOCAL_RANK")
    return int(local) if local is not None else None


@dataclass(frozen=True)
class Shard:
    """Rank ``rank`` of ``size``: its every ``size``-th row of a batch, or of a stream the rows at
    positions ``rank`` modulo ``size``."""

    rank: int = 0
    size: int = 1

    def mine(self, positions: Tensor) -> Tensor:
        """[n] positions -> the ones that are this rank's (in the same order)."""
        return positions if self.size == 1 else positions[positions % self.size == self.rank]

    def first(self, start: int) -> int:
        """This rank's first position from ``start`` on."""
        return start + (self.rank - start) % self.size

    def count(self, start: int, stop: int) -> int:
        """How many of the positions start..stop-1 are this rank's."""
        return len(range(self.first(start), stop, self.size))

    def local(self, positions: Tensor, start: int) -> Tensor:
        """[n] positions (each >= ``start``) -> those of this rank, as indices into its own rows
        from ``start`` on (the rows a stream's window holds)."""
        return (self.mine(positions) - self.first(start)) // self.size


@dataclass
class World:
    """The processes training one model: this one's ``rank`` of ``size``, ``local_rank`` on its
    node (its GPU), and the device collectives run on. ``traffic`` counts what was exchanged."""

    rank: int = 0
    size: int = 1
    local_rank: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    traffic: dict[str, float] = field(default_factory=lambda: {"seconds": 0.0, "bytes": 0.0, "calls": 0})

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run directory and prints."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.size)

    # -- collectives (each returns its input where the world is one process) ------------------
    def _count(self, started: float, nbytes: int) -> None:
        self.traffic["seconds"] += time.perf_counter() - started
        self.traffic["bytes"] += nbytes
        self.traffic["calls"] += 1

    def sum(self, x: Tensor) -> Tensor:
        """``x`` summed over ranks (in place; the same on every rank after)."""
        if self.size > 1 and x.numel():
            started = time.perf_counter()
            moved = x.to(self.device)
            dist.all_reduce(moved)
            if moved is not x:
                x.copy_(moved)
            self._count(started, x.numel() * x.element_size())
        return x

    def gather(self, x: Tensor, lengths: Sequence[int] | None = None) -> list[Tensor]:
        """Every rank's ``x`` (first dimensions may differ; ``lengths``: every rank's, when known),
        in rank order."""
        if self.size == 1:
            return [x]
        if lengths is None:
            lengths = [int(n) for n in self.gather(torch.tensor([x.shape[0]]), [1] * self.size)]
        started = time.perf_counter()
        padded = torch.zeros((max(lengths), *x.shape[1:]), dtype=x.dtype, device=self.device)
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        self._count(started, padded.numel() * padded.element_size() * self.size)
        return [p[:n].to(x.device) for p, n in zip(parts, lengths)]

    def gather_json(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (JSON-able), in rank order, on rank 0; [] on the others."""
        if self.size == 1:
            return [value]
        data = torch.from_numpy(np.frombuffer(json.dumps(value).encode(), dtype=np.uint8).copy())
        lengths = [int(n) for n in self.gather(torch.tensor([len(data)]), [1] * self.size)]
        started = time.perf_counter()
        padded = torch.zeros(max(lengths), dtype=torch.uint8, device=self.device)
        padded[: len(data)] = data
        parts = [torch.empty_like(padded) for _ in range(self.size)] if self.main else None
        dist.gather(padded, parts, dst=0)
        self._count(started, padded.numel())
        return [json.loads(p[:n].cpu().numpy().tobytes()) for p, n in zip(parts, lengths)] if self.main else []

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.size > 1:
            dist.barrier()

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` (JSON-able) on every rank: one decision for all (e.g. stopping)."""
        if self.size == 1:
            return value
        data = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8) if self.main else torch.zeros(0)
        length = torch.tensor([len(data)], device=self.device)
        dist.broadcast(length, 0)
        buffer = data.to(self.device) if self.main else torch.zeros(int(length.item()), dtype=torch.uint8,
                                                                     device=self.device)  # fmt: skip
        dist.broadcast(buffer, 0)
        return json.loads(buffer.cpu().numpy().tobytes())

    # -- what training calls --------------------------------------------------------------------
    def global_losses(self, losses: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        """Local task losses (means over each task's ``rows`` [T] in this rank's batch) -> losses
        whose value is the global batch's mean and whose gradient, averaged over ranks, is the
        global mean's (module docstring)."""
        if self.size == 1:
            return losses
        local = torch.stack([v.detach().float() for v in losses.values()])
        counts = rows.to(local.device, torch.float32)
        both = self.sum(torch.cat([local * counts, counts]))
        totals, global_rows = both.split(len(local))
        values = totals / global_rows.clamp_min(1.0)
        scales = counts / global_rows.clamp_min(1.0) * self.size
        return {name: _ValueOf.apply(loss * scales[i], values[i]) for i, (name, loss) in enumerate(losses.items())}

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Every parameter's ``.grad`` averaged over ranks; one that no rank gave a gradient keeps
        None (an optimizer skips it, as in one process)."""
        if self.size == 1:
            return
        dense = [p for p in params if not (p.grad is not None and p.grad.is_sparse)]
        flat = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device, dtype=p.dtype)
                for p in dense]  # fmt: skip
        has = torch.tensor([p.grad is not None for p in dense], dtype=flat[0].dtype if flat else torch.float32,
                           device=flat[0].device if flat else self.device)  # fmt: skip
        if dense:
            total = self.sum(torch.cat([*flat, has]))
            given = total[-len(dense):]
            offset = 0
            for p, g in zip(dense, given.tolist()):
                part = total[offset : offset + p.numel()]
                offset += p.numel()
                p.grad = part.view_as(p).div(self.size) if g > 0 else None
        self._sparse_means([p for p in params if p.grad is not None and p.grad.is_sparse])

    def _sparse_means(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sparse [rows, dim] gradients averaged over ranks: every rank's (row, value) pairs, for
        all tables in three all-gathers (the counts, the rows, the values)."""
        if not params:
            return
        grads = [p.grad.coalesce() for p in params]
        counts = torch.tensor([g.indices().shape[1] for g in grads])
        rows_of = [t.tolist() for t in self.gather(counts, [len(grads)] * self.size)]  # [rank][table]
        dims = [math.prod(g.shape[1:]) for g in grads]  # floats a row
        floats_of = [[n * d for n, d in zip(per_table, dims)] for per_table in rows_of]
        rows = self.gather(torch.cat([g.indices()[0] for g in grads]), [sum(r) for r in rows_of])
        values = self.gather(torch.cat([g.values().reshape(-1) for g in grads]), [sum(f) for f in floats_of])
        rows = [r.split(n) for r, n in zip(rows, rows_of)]  # [rank][table]
        values = [v.split(n) for v, n in zip(values, floats_of)]
        for t, (p, g) in enumerate(zip(params, grads)):
            union = torch.unique(torch.cat([r[t] for r in rows]))  # sorted
            summed = torch.zeros(len(union), *g.shape[1:], dtype=g.dtype, device=g.device)
            for r, v in zip(rows, values):  # rank by rank, each rank's rows unique: the same sums everywhere
                summed.index_add_(0, torch.searchsorted(union, r[t]), v[t].view(-1, *g.shape[1:]))
            p.grad = torch.sparse_coo_tensor(union[None], summed / self.size, g.shape, is_coalesced=True,
                                             check_invariants=False)  # fmt: skip
    @contextlib.contextmanager
    def rank_rng(self, seed: int, step: int) -> Iterator[None]:
        """Inside: torch's generators draw from a stream of this rank and step (dropout); after,
        the global CPU generator is back where it was (the weighting methods' draws)."""
        if self.size == 1:
            yield
            return
        state = torch.get_rng_state()
        torch.manual_seed(hash((seed, self.rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)
        try:
            yield
        finally:
            torch.set_rng_state(state)

    def record(self) -> dict[str, Any]:
        """What an epoch's record says of the world (and how much it exchanged since the last)."""
        out = {"processes": self.size, "collective_seconds": round(self.traffic["seconds"], 3),
               "bytes": int(self.traffic["bytes"]), "collectives": int(self.traffic["calls"])}  # fmt: skip
        self.traffic.update(seconds=0.0, bytes=0.0, calls=0)
        return out


class _ValueOf(torch.autograd.Function):
    """``value`` (exactly, the same on every rank) with the gradient of ``local``."""

    @staticmethod
    def forward(ctx: Any, local: Tensor, value: Tensor) -> Tensor:
        return value.to(local.dtype).clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


SINGLE = World()  # one process


TIMEOUT = datetime.timedelta(hours=2)  # the longest one rank waits for the others (rank 0 writing the report, say)


@contextlib.contextmanager
def joined(device: torch.device, timeout: datetime.timedelta = TIMEOUT) -> Iterator[World]:
    """The world torchrun started this process in (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): the
    process group is made on entry (gloo for a CPU ``device``, NCCL for CUDA) and, once every rank
    is done, destroyed. Outside torchrun: one process, nothing made."""
    if env_world_size() == 1:
        yield World()
        return
    made = not dist.is_initialized()
    world = World(env_rank(), env_world_size(), env_local_rank(), device)
    if made and device.type == "cuda":  # one GPU per process: NCCL's collectives and barriers on this one
        torch.cuda.set_device(device)
        dist.init_process_group(world.backend, timeout=timeout, device_id=device)
    elif made:
        dist.init_process_group(world.backend, timeout=timeout)
    try:
        yield world
        world.barrier()  # no rank tears the group down while another still finishes (rank 0 writing)
    finally:
        if made:
            dist.destroy_process_group()
