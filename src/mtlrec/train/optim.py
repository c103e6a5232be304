"""Optimizers for training: Adam(W) for the dense parameters, and a row-wise Adam for embedding
tables that touches only the rows in the batch.

A 1M-id field makes a 16M-float table; dense Adam reads and writes all of it (and its two moment
tensors) on every step although a batch uses a few thousand rows. ``RowwiseAdam`` updates those
rows only, from the table's sparse gradient, and still gives the parameters dense Adam would:
a row that no batch touched for ``n`` steps had a zero gradient for ``n`` steps, so its moments
only decayed (``m b1^n``, ``v b2^n``) while dense Adam kept moving it by
``lr m_hat / sqrt(v_hat)`` per step. That movement is a geometric series in ``b1 / sqrt(b2)``
(with the bias corrections of the steps it spans), added in closed form when the row is next
touched, and for every row by ``flush()`` (before evaluation). The one approximation: ``eps`` is
left out of the skipped steps' denominators (relative error ``eps / sqrt(v_hat)``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from mtlrec.config import TrainConfig


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small index ops (unique, index_add, gathers) on one thread: they take about a millisecond
    there, while with two threads and another process busy on the machine each parallel region
    waits for a descheduled thread (``unique`` of 40k ids measured 0.9 ms vs 200 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


CHUNK = 4096  # steps of RowwiseAdam's per-step tables computed at once
_VIEWS = ("exp_avg", "exp_avg_sq")  # views of ``moments`` in RowwiseAdam's state (for torch's names)


class RowwiseAdam(torch.optim.Optimizer):
    """Adam (no weight decay) for 2-d tables whose gradient is sparse (``nn.Embedding(sparse=True)``)
    or dense (only its nonzero rows are updated). Call ``flush()`` before reading the weights."""

    def __init__(
        self, params: Iterable[nn.Parameter], *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:  # fmt: skip
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1 and b1 * b1 < b2):
            raise ValueError(f"RowwiseAdam: need 0 <= b1, b2 < 1 and b1^2 < b2, got betas={betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        # the series r^k f(s + k) converges with r = b1 / sqrt(b2) < 1; terms below 1e-12 are dropped
        self._r = b1 / math.sqrt(b2)
        self._terms = max(1, math.ceil(math.log(1e-12) / math.log(self._r))) if self._r > 0 else 1
        self._tables: dict[tuple[tuple[float, float], torch.device], dict[str, Tensor]] = {}
        self._seen: dict[int, tuple[Tensor, Tensor, Tensor]] = {}  # id(table) -> (ids, unique ids, inverse)

    # -- the closed form of the skipped steps -------------------------------------------------------
    def _series(self, betas: tuple[float, float], upto: int, device: torch.device) -> dict[str, Tensor]:
        """Per-step tables for s = 0..min(upto, cap) (at least), computed in chunks of CHUNK steps
        and kept (28 bytes a step): ``tail[s]`` = sum_{k >= 1} r^k f(s + k), f(j) = sqrt(1 - b2^j)
        / (1 - b1^j): the dense-Adam movement, in units of ``lr m / sqrt(v)``, of a row whose gradient
        is zero from step s + 1 on; ``b1``, ``b2``, ``r``: b1^n, b2^n, r^n for a gap of n steps
        (gathers instead of powers). Beyond ``cap`` steps (``_cap``) none of them changes any more,
        so a table of a few MB serves runs of any length (``_catch_up`` clamps its indices). Computed
        in float64 on the CPU, kept on ``device`` (the tables' rows index them there)."""
        t = self._tables.get((betas, device))
        b1, b2 = betas
        upto = min(upto, self._cap(b2))
        while t is None or len(t["tail"]) <= upto:
            have = 0 if t is None else len(t["tail"])
            k = torch.arange(1, self._terms + 1, dtype=torch.float64)
            s = torch.arange(have, min(have + CHUNK, self._cap(b2) + 1), dtype=torch.float64)
            j = s[:, None] + k  # [S, K] the steps
            f = torch.sqrt(1 - b2**j) / (1 - b1**j)
            new = {"tail": (self._r**k * f).sum(1), "b1": b1**s, "b2": b2**s, "r": self._r**s}
            new = {key: v.to(device) for key, v in new.items()}
            t = new if t is None else {key: torch.cat([t[key], new[key]]) for key in t}
            self._tables[(betas, device)] = t
        return t

    @staticmethod
    def _cap(b2: float) -> int:
        """Steps after which b2^n < 1e-18: f(j) is then 1 to double precision (tail stops changing),
        and b1^n, b2^n and r^n are too small to change a moment or a parameter."""
        return max(CHUNK, math.ceil(math.log(1e-18) / math.log(b2))) if 0 < b2 < 1 else CHUNK

    def _catch_up(self, last: Tensor, upto: int, m: Tensor, v: Tensor, group: dict) -> Tensor:
        """Rows whose state is current at steps ``last`` [R], moments ``m``, ``v`` [R, dim] (copies)
        -> their parameter change up to step ``upto``, their gradient having been zero since; ``m``
        and ``v`` are brought to step ``upto`` in place."""
        t = self._series(group["betas"], upto, last.device)
        cap = self._cap(group["betas"][1])
        n = (upto - last).clamp(max=cap)  # skipped steps: last + 1 .. upto
        last, upto = last.clamp(max=cap), min(upto, cap)
        # sum_{k=1..n} r^k f(last + k) = W(last) - r^n W(upto)
        moved = ((t["tail"][last] - t["r"][n] * t["tail"][upto]) * group["lr"]).to(m.dtype)
        delta = m / v.sqrt().add_(group["eps"])
        delta.mul_(moved[:, None])
        m.mul_(t["b1"][n].to(m.dtype)[:, None])
        v.mul_(t["b2"][n].to(v.dtype)[:, None])
        return delta

    def _rows(self, p: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
        """(row indices [R], their gradient [R, dim]), duplicate rows summed."""
        if grad.is_sparse:  # uncoalesced: one entry per lookup; unique + index_add beats coalesce()
            if grad.is_coalesced():
                return grad.indices()[0], grad.values()
            idx = grad._indices()[0]
            seen = self._seen.pop(id(p), None)  # the lookup's ids, deduplicated before the forward pass
            if seen is not None and seen[0].shape == idx.shape and torch.equal(seen[0], idx):
                rows, inverse = seen[1], seen[2]
            else:
                rows, inverse = torch.unique(idx, return_inverse=True)
            values = grad._values()  # [lookups, dim] -> [R, dim]; scatter_add_ measured 1.5x faster than index_add_
            index = inverse[:, None].expand_as(values)
            summed = torch.zeros(len(rows), values.shape[1], dtype=values.dtype, device=values.device)
            return rows, summed.scatter_add_(0, index, values)
        rows = grad.ne(0).any(1).nonzero().squeeze(1)
        return rows, grad.index_select(0, rows)

    @torch.no_grad()
    def step(self, closure=None) -> None:  # noqa: ANN001 (torch's signature)
        with one_thread():
            self._step()

    def _step(self) -> None:
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    self._init_state(p, state)
                rows, g = self._rows(p, p.grad)
                stale = state["last"].index_select(0, rows) < state["step"]
                if bool(stale.any()):  # not caught up before the forward pass (see catch_up): rows another
                    self._update_rows(p, state, group, rows[stale])  # process read, under torchrun
                state["step"] += 1
                t = state["step"]
                moments = state["moments"].index_select(0, rows)
                m, v = moments[:, 0], moments[:, 1]  # views: updated in place
                delta = torch.zeros_like(g)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(group["eps"])
                delta.addcdiv_(m, denom, value=group["lr"] / (1 - b1**t))
                p.index_add_(0, rows, delta, alpha=-1.0)
                state["moments"].index_copy_(0, rows, moments)
                state["last"].index_fill_(0, rows, t)

    @staticmethod
    def _init_state(p: Tensor, state: dict) -> None:
        state["step"] = 0
        state["moments"] = torch.zeros(p.shape[0], 2, *p.shape[1:], dtype=p.dtype, device=p.device)  # m, v of a row
        state["exp_avg"], state["exp_avg_sq"] = state["moments"][:, 0], state["moments"][:, 1]  # views
        state["last"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)  # the step each row is current at

    def state_dict(self) -> dict:
        """torch's layout, without the ``exp_avg``/``exp_avg_sq`` views (they alias ``moments``)."""
        out = super().state_dict()
        out["state"] = {k: {n: v for n, v in s.items() if n not in _VIEWS} for k, s in out["state"].items()}
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        """As saved by ``state_dict``; unlike torch's, ``last`` stays int64 and the views are made again."""
        params = [p for g in self.param_groups for p in g["params"]]
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state.clear()
        for index, saved in state_dict["state"].items():
            device = params[index].device  # a checkpoint's CPU tensors go where the table is
            state = {k: v.to(device, copy=True) if torch.is_tensor(v) else v for k, v in saved.items()}
            state["exp_avg"], state["exp_avg_sq"] = state["moments"][:, 0], state["moments"][:, 1]
            self.state[params[index]] = state
        self._seen.clear()

    @torch.no_grad()
    def catch_up(self, p: Tensor, ids: Tensor) -> None:
        """Bring the rows ``ids`` of table ``p`` up to the last step before they are read: the
        gradient of the next step must be taken at the parameters dense Adam would have."""
        state = self.state.get(p)
        if not state:
            return
        group = next(g for g in self.param_groups if any(q is p for q in g["params"]))
        with one_thread():
            ids = ids.reshape(-1).long()  # index_copy_ and index_select need int64 rows
            rows, inverse = torch.unique(ids, return_inverse=True)
            self._seen[id(p)] = (ids, rows, inverse)  # the gradient of this lookup comes back with these ids
            stale = state["last"].index_select(0, rows) < state["step"]
            if bool(stale.any()):
                self._update_rows(p, state, group, rows[stale])

    def _update_rows(self, p: Tensor, state: dict, group: dict, rows: Tensor) -> None:
        """Catch ``rows`` (unique) of ``p`` up to the last step."""
        moments = state["moments"].index_select(0, rows)
        delta = self._catch_up(state["last"].index_select(0, rows), state["step"], moments[:, 0], moments[:, 1], group)
        p.index_add_(0, rows, delta, alpha=-1.0)
        state["moments"].index_copy_(0, rows, moments)
        state["last"].index_fill_(0, rows, state["step"])

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row up to the last step, so the tables hold what dense Adam would hold."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if state:
                    last = state["last"]  # 0: never touched (moments 0, nothing to catch up)
                    self._update_rows(p, state, group, ((last > 0) & (last < state["step"])).nonzero().squeeze(1))


def embedding_tables(model: nn.Module) -> list[nn.Module]:
    """The model's trainable embedding modules (``nn.Embedding`` and ``nn.EmbeddingBag``)."""
    return [
        m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.weight.requires_grad
    ]


class Optimizers:
    """The dense optimizer and, with ``train.embedding_update: rowwise``, the row-wise Adam of the
    embedding tables, stepped together. While open, the tables' modules give sparse gradients and
    bring the rows they are about to read up to date (a forward pre-hook); ``close()`` undoes both."""

    def __init__(self, model: nn.Module, extra: Sequence[nn.Parameter], cfg: TrainConfig) -> None:
        tables = embedding_tables(model) if cfg.embedding_update == "rowwise" else []
        rowwise = {id(m.weight) for m in tables}
        dense = [p for p in [*model.parameters(), *extra] if p.requires_grad and id(p) not in rowwise]
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        # fused: one kernel for all tensors (about 3x faster than foreach on CPU for this model's 0.5M)
        self.dense = cls(dense, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.rowwise = RowwiseAdam([m.weight for m in tables], lr=cfg.lr) if tables else None
        if tables and cfg.weight_decay > 0:
            warnings.warn(
                f"train.weight_decay {cfg.weight_decay} reaches the dense parameters only: with "
                "train.embedding_update: rowwise the embedding tables are not decayed (embedding_update: dense "
                "decays them too, at the cost of a dense table update every step)",
                stacklevel=2,
            )
        self._name = {id(p): n for n, p in model.named_parameters()}
        self._name.update({id(p): f"extra.{i}" for i, p in enumerate(extra)})
        self._undo = []
        for m in tables:
            handle = m.register_forward_pre_hook(self._before_lookup)
            self._undo.append((m, m.sparse, handle))
            m.sparse = True  # backward yields the rows used, not a dense [rows, dim] gradient

    def _before_lookup(self, module: nn.Module, args: tuple) -> None:
        if torch.is_grad_enabled():  # evaluation runs after flush(): nothing is stale then
            self.rowwise.catch_up(module.weight, args[0])

    def zero_grad(self) -> None:
        self.dense.zero_grad(set_to_none=True)
        if self.rowwise is not None:
            self.rowwise.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.dense.step()
        if self.rowwise is not None:
            self.rowwise.step()

    def flush(self) -> None:
        """Make the tables current (before evaluating or saving the model)."""
        if self.rowwise is not None:
            self.rowwise.flush()

    def scale_lr(self, factor: float) -> None:
        """Multiply every learning rate by ``factor``. The tables are flushed first: the steps they
        skipped so far are caught up at the rate those steps had."""
        self.flush()
        for _, opt in self._optimizers():
            for group in opt.param_groups:
                group["lr"] *= factor

    def state_dict(self) -> dict[str, Any]:
        """Both optimizers' state, keyed by parameter name (``model.named_parameters()``; the extra
        parameters as ``extra.<i>``), so that a model with grown tables can take it over."""
        return {kind: _by_name(opt.state_dict(), self._names(opt)) for kind, opt in self._optimizers()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for kind, opt in self._optimizers():
            opt.load_state_dict(_by_index(state[kind], self._names(opt)))

    def _optimizers(self) -> list[tuple[str, torch.optim.Optimizer]]:
        return [("dense", self.dense)] + ([("rowwise", self.rowwise)] if self.rowwise is not None else [])

    def _names(self, opt: torch.optim.Optimizer) -> list[str]:
        return [self._name[id(p)] for g in opt.param_groups for p in g["params"]]

    def close(self) -> None:
        self.flush()
        for m, sparse, handle in self._undo:
            m.sparse = sparse
            handle.remove()
        self._undo = []


def _by_name(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """torch's optimizer state (parameters by position) -> parameters by name."""
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {names[i]: s for i, s in state["state"].items()}, "param_groups": groups}


def _by_index(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The inverse of ``_by_name`` for an optimizer over ``names`` (the same parameters)."""
    index = {n: i for i, n in enumerate(names)}
    saved = [n for g in state["param_groups"] for n in g["params"]]
    if saved != names:
        missing = sorted(set(names) - set(saved)) or sorted(set(saved) - set(names))
        raise ValueError(f"optimizer state is for other parameters (e.g. {missing[:1]})")
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]
    return {"state": {index[n]: s for n, s in state["state"].items()}, "param_groups": groups}
