"""Mixture-of-experts building blocks: a bank of MLP experts computed in one batched product per
layer, the same for every task's own experts (each task's parameters its own), a softmax gate that
records how much weight it gives each expert, and one CGC level (Customized Gate Control, the
building block of PLE)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn


class Experts(nn.Module):
    """``n`` independent MLP experts (Linear -> ReLU -> Dropout per layer).

    [B, in_dim] (one input for all) or [n, B, in_dim] (one input per expert) -> [B, n, dims[-1]].
    The weights of all experts are one [n, in, out] tensor per layer, so a layer is one batched
    matrix product, not a Python loop over experts.
    """

    def __init__(self, in_dim: int, n: int, dims: Sequence[int], *, dropout: float = 0.0) -> None:
        super().__init__()
        if n < 1 or not dims:
            raise ValueError(f"experts: need n >= 1 and at least one layer, got n={n}, dims={tuple(dims)}")
        self.n = n
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d in dims:
            bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per expert
            self.weights.append(nn.Parameter(torch.empty(n, in_dim, d).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, d).uniform_(-bound, bound)))
            in_dim = d
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_dim = in_dim

    def forward(self, x: Tensor) -> Tensor:
        return _bank(x, self.weights, self.biases, self.dropout)

    def split(self, sizes: Sequence[int]) -> list[Experts]:
        """The bank cut into banks of ``sizes`` experts (in order; they sum to ``n``), each with its
        own parameters, holding the values of its experts here."""
        if sum(sizes) != self.n:
            raise ValueError(f"experts: cannot split {self.n} experts into {tuple(sizes)}")
        dims = [w.shape[2] for w in self.weights]
        p = self.dropout.p if isinstance(self.dropout, nn.Dropout) else 0.0
        with torch.random.fork_rng(devices=[]):  # the parts' own initial draws are overwritten: draw nothing
            parts = [Experts(self.weights[0].shape[1], size, dims, dropout=p) for size in sizes]
        with torch.no_grad():
            for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
                for part, w_part, b_part in zip(parts, w.split(list(sizes)), b.split(list(sizes))):
                    part.weights[layer].copy_(w_part)
                    part.biases[layer].copy_(b_part)
        return parts


class TaskExperts(nn.Module):
    """Each task's own ``n`` experts: one ``Experts`` per task, so that each task's experts are
    parameters of their own (reached by that task only, unless something shared reads them), yet
    computed like one bank of ``T * n``: one batched product per layer over the concatenated weights.

    [B, in_dim] (one input for all) or [T * n, B, in_dim] (one per expert) -> [B, T * n, dims[-1]],
    task i's experts at i * n ... (i + 1) * n - 1. Initialised as one bank of ``T * n`` experts
    (the random draws of the single bank this replaced, in the same order)."""

    def __init__(self, in_dim: int, tasks: Sequence[str], n: int, dims: Sequence[int], *, dropout: float = 0.0) -> None:
        super().__init__()
        bank = Experts(in_dim, len(tasks) * n, dims, dropout=dropout)
        self.n, self.per_task = len(tasks) * n, n
        self.banks = nn.ModuleDict(zip(tasks, bank.split([n] * len(tasks))))
        self.dropout = bank.dropout
        self.out_dim = bank.out_dim

    def forward(self, x: Tensor) -> Tensor:
        banks = list(self.banks.values())
        weights = [torch.cat([b.weights[i] for b in banks]) for i in range(len(banks[0].weights))]  # [T * n, in, d]
        biases = [torch.cat([b.biases[i] for b in banks]) for i in range(len(banks[0].biases))]  # [T * n, 1, d]
        return _bank(x, weights, biases, self.dropout)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # weights saved before the split: one [T * n, ...] tensor per layer, cut into the tasks' own
        for kind in ("weights", "biases"):
            layer = 0
            while (key := f"{prefix}{kind}.{layer}") in state_dict:
                for task, part in zip(self.banks, state_dict.pop(key).split(self.per_task)):
                    state_dict[f"{prefix}banks.{task}.{kind}.{layer}"] = part
                layer += 1
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _bank(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], dropout: nn.Module) -> Tensor:
    """n experts' layers as batched products: [B, in] or [n, B, in] -> [B, n, D]."""
    n = weights[0].shape[0]
    h = x if x.dim() == 3 else x.unsqueeze(0).expand(n, *x.shape)  # [n, B, in]
    for w, b in zip(weights, biases):
        h = dropout(torch.relu(torch.baddbmm(b, h, w)))  # [n, B, d]
    return h.transpose(0, 1)  # [B, n, D]


class Gate(nn.Module):
    """softmax(Linear(x)) over named experts: [B, in_dim] -> [B, n].

    While training it sums its weights per expert, so a model can report which experts each task
    uses (``utilisation``); the sums stay on the device (no sync per step), in non-persistent
    buffers: not part of the weights, but of the train state that a checkpoint saves.
    """

    def __init__(self, in_dim: int, experts: Sequence[str]) -> None:
        super().__init__()
        self.experts = tuple(experts)
        self.linear = nn.Linear(in_dim, len(self.experts))
        self.register_buffer("usage_sum", torch.zeros(len(self.experts)), persistent=False)
        self.register_buffer("usage_rows", torch.zeros((), dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        w = torch.softmax(self.linear(x), -1)  # [B, n]
        if self.training:
            self.usage_sum += w.detach().sum(0)
            self.usage_rows += x.shape[0]
        return w

    def utilisation(self) -> dict[str, float] | None:
        """{expert: mean weight} over the rows seen while training since the last call (then reset);
        None when there were none."""
        rows = int(self.usage_rows)
        if rows == 0:
            return None
        mean = (self.usage_sum / rows).tolist()
        self.usage_sum.zero_()
        self.usage_rows.zero_()
        return {name: round(v, 6) for name, v in zip(self.experts, mean)}


def mix(weights: Tensor, experts: Tensor) -> Tensor:
    """Gate-weighted sum of expert outputs: [B, n] x [B, n, D] -> [B, D]."""
    return (weights.unsqueeze(-1) * experts).sum(1)  # on CPU much faster than B bmm's of one row


def mix_tasks(weights: Tensor, experts: Tensor) -> Tensor:
    """Several gates over the same experts at once: [B, T, n] x [B, n, D] -> [B, T, D]."""
    return torch.bmm(weights, experts)  # one call: about 3x faster than T calls of ``mix``


def utilisation(gates: Mapping[str, Gate]) -> dict[str, dict[str, dict[str, float]]]:
    """``{"experts": {gate: {expert: mean weight}}}`` for a model's epoch statistics (see
    ``MultiTaskModel.epoch_stats``); empty when no gate has seen training rows."""
    out = {name: u for name, g in gates.items() if (u := g.utilisation()) is not None}
    return {"experts": out} if out else {}


class CGCLevel(nn.Module):
    """One extraction level of PLE (Tang et al., RecSys 2020).

    Each task has ``n_specific`` experts of its own and all tasks share ``n_shared``; task t's gate
    mixes its own and the shared experts (on t's input). Unless ``last``, a shared gate mixes every
    expert of the level (on the shared input) into the shared input of the next level.

    forward(inputs: {task: [B, in_dim]}, shared: [B, in_dim]) -> ({task: [B, D]}, [B, D] or None)
    Expert names in gates: ``shared_k`` and ``own_k`` (task gates), ``<task>_k`` (the shared gate).
    """

    def __init__(
        self,
        in_dim: int,
        tasks: Sequence[str],
        *,
        n_shared: int,
        n_specific: int,
        dims: Sequence[int],
        dropout: float = 0.0,
        last: bool = False,
    ) -> None:
        super().__init__()
        self.task_names = tuple(tasks)
        self.n_specific = n_specific
        self.shared = Experts(in_dim, n_shared, dims, dropout=dropout)
        # every task's own experts, computed as one bank (one product per layer): task i's are i*n_specific...
        self.specific = TaskExperts(in_dim, tasks, n_specific, dims, dropout=dropout)
        own = [f"own_{k}" for k in range(n_specific)] + [f"shared_{k}" for k in range(n_shared)]
        self.gates = nn.ModuleDict({t: Gate(in_dim, own) for t in tasks})
        every = [f"{t}_{k}" for t in tasks for k in range(n_specific)] + [f"shared_{k}" for k in range(n_shared)]
        self.shared_gate = None if last else Gate(in_dim, every)
        self.out_dim = self.shared.out_dim

    def forward(self, inputs: Mapping[str, Tensor], shared: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        common = self.shared(shared)  # [B, n_shared, D]
        x = [inputs[t] for t in self.task_names]
        if all(v is shared for v in x):  # the first level: one input for every expert
            own = self.specific(shared)
        else:  # the tasks' own inputs, each repeated for the task's experts: [T * n_specific, B, in]
            own = self.specific(torch.stack(x).repeat_interleave(self.n_specific, 0))
        k, n_tasks = self.n_specific, len(self.task_names)
        w = torch.stack([self.gates[t](v) for t, v in zip(self.task_names, x)], 1)  # [B, T, k + n_shared]
        per_task = own.view(own.shape[0], n_tasks, k, own.shape[-1])  # [B, T, k, D]: each task's own experts (B may be 0)
        h = (w[..., :k, None] * per_task).sum(2) + mix_tasks(w[..., k:], common)  # [B, T, D]
        out = dict(zip(self.task_names, h.unbind(1)))
        if self.shared_gate is None:
            return out, None
        w, n = self.shared_gate(shared), own.shape[1]  # over all [B, T * n_specific + n_shared] experts
        return out, mix(w[:, :n], own) + mix(w[:, n:], common)
