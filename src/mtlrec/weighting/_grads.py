"""The one copy of the gradient helpers: per-task gradients on the shared part of a model, the
combined gradient written back, and the base class of the gradient-manipulation methods.

Every gradient method here (PCGrad, MGDA, CAGrad, Nash-MTL) turns the per-task gradients
``g_1..g_T`` into a shared update ``sum_t w_t g_t`` whose coefficients ``w`` depend on the
gradients only through their Gram matrix ``K = G G^T`` ([T, T]). So a method is one function
``K -> w``; how the gradients are taken is chosen by one hyperparameter, ``on``:

``parameters`` (default): the flattened gradient on every parameter of
    ``model.shared_parameters()``, the embedding table included. Exact, as in the papers. Cost:
    T backward passes per step instead of one (T - 1 extra), plus T copies of the shared
    gradient (with a large embedding table this is what dominates).
``representation``: the gradient on the shared representation, found in the autograd graph as
    the tensors nearest the losses that every task's loss depends on (for shared_bottom, the
    bottom MLP's output; for MMoE, the stacked expert outputs). This is MGDA-UB (Sener & Koltun,
    2018): the per-task gradients stop there, so they cost T backward passes through the towers
    only, plus one full backward pass; the weights ``w`` are applied to the representation's
    gradient, which then flows into all shared parameters.

Either way each task's own parameters (its tower) get that task's plain gradient (weight 1), as in
LibMTL; only the shared parameters get the combined update.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge

from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import LossWeighting

GradTarget = Literal["parameters", "representation"]


def flatten(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    """One [P] vector from per-tensor gradients (None, for an unused tensor, becomes zeros)."""
    if not like:
        return torch.zeros(0)
    # an embedding table's gradient is sparse while the trainer updates it row-wise
    dense = [(g.to_dense() if g.is_sparse else g) if g is not None else torch.zeros_like(p) for g, p in zip(grads, like)]
    return torch.cat([g.reshape(-1) for g in dense])


def write_grad(params: Sequence[nn.Parameter], flat: Tensor) -> None:
    """Add the [P] vector ``flat`` into ``.grad`` of ``params`` (in order)."""
    offset = 0
    for p in params:
        g = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
        p.grad = g.clone() if p.grad is None else p.grad + g


def gram(grads: Tensor) -> Tensor:
    """[T, P] -> [T, T] inner products, in float64 (the solvers work on this)."""
    g = grads.double()
    return g @ g.T


def cosine_matrix(grads: Tensor) -> Tensor:
    """[T, P] -> [T, T] cosine similarities (NaN where a gradient is zero)."""
    k = gram(grads)
    norm = k.diagonal().sqrt()
    return k / (norm[:, None] * norm[None, :])


def parameter_gradients(losses: Sequence[Tensor], params: Sequence[Tensor], *, keep_graph: bool = False) -> Tensor:
    """[T, P]: each loss's gradient on ``params``, flattened. Touches no ``.grad``."""
    rows = []
    for i, loss in enumerate(losses):
        if not loss.requires_grad or not params:
            rows.append(flatten([None] * len(params), params))
            continue
        keep = keep_graph or i < len(losses) - 1
        grads = torch.autograd.grad(loss, params, retain_graph=keep, allow_unused=True)
        rows.append(flatten(grads, params))
    return torch.stack(rows)


def shared_edges(losses: Sequence[Tensor]) -> list[GradientEdge]:
    """The shared representation: edges of the autograd graph into nodes that every loss reaches,
    taken by a node that not every loss reaches (the task-specific consumers of the shared part).
    Empty when nothing is shared."""
    roots = [loss.grad_fn for loss in losses if loss.grad_fn is not None]
    if len(roots) < 2:
        return []
    reach = [_reachable(root) for root in roots]
    common = set.intersection(*reach)
    edges: dict[tuple[int, int], GradientEdge] = {}
    for nodes in reach:
        for node in nodes - common:
            for child, nr in node.next_functions:
                if child is not None and child in common:
                    edges[(id(child), nr)] = GradientEdge(child, nr)
    return list(edges.values())


def _reachable(root) -> set:
    seen, stack = {root}, [root]
    while stack:
        for child, _ in stack.pop().next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def representation_gradients(
    losses: Sequence[Tensor], edges: Sequence[GradientEdge]
) -> tuple[list[tuple[Tensor | None, ...]], Tensor]:
    """Each loss's gradient on the representation ``edges`` (graph kept): per loss a tuple with one
    tensor per edge (None where unused), and the [T, P] matrix of them flattened."""
    per_loss = [
        torch.autograd.grad(loss, edges, retain_graph=True, allow_unused=True)
        if edges and loss.requires_grad
        else (None,) * len(edges)
        for loss in losses
    ]
    shapes = [next((g[i].shape for g in per_loss if g[i] is not None), torch.Size([0])) for i in range(len(edges))]
    rows = [
        torch.cat([(g if g is not None else torch.zeros(s)).reshape(-1) for g, s in zip(grads, shapes)])
        if shapes
        else torch.zeros(0)
        for grads in per_loss
    ]
    return per_loss, torch.stack(rows)


def task_gradients(losses: Sequence[Tensor], shared: Sequence[nn.Parameter], on: GradTarget) -> Tensor:
    """[T, P]: each loss's gradient on the shared parameters or representation. Touches no
    ``.grad`` and keeps the graph (the caller still runs its own backward pass)."""
    if on == "parameters":
        return parameter_gradients(losses, [p for p in shared if p.requires_grad], keep_graph=True)
    return representation_gradients(losses, shared_edges([x for x in losses if x.requires_grad]))[1]


class TaskGradients:
    """The per-task gradients of one step and how to apply a combination of them.

    ``matrix``: [T, P] (rows in the order of ``losses``); ``apply(w)`` sets every ``.grad``: the
    shared part gets ``sum_t w_t g_t``, each task's own parameters their plain gradient."""

    def __init__(self, losses: Sequence[Tensor], shared: Sequence[nn.Parameter], on: GradTarget) -> None:
        self.losses = list(losses)
        self.on = on
        if on == "parameters":
            self.shared = [p for p in shared if p.requires_grad]
            self.matrix = self._by_parameters()
        else:
            self.edges = shared_edges([x for x in self.losses if x.requires_grad])
            self.matrix = self._by_representation()

    def _by_parameters(self) -> Tensor:
        # one backward per task: task-specific .grad accumulates plain gradients, the shared ones
        # are read and cleared after each pass
        before = [p.grad for p in self.shared]
        for p in self.shared:
            p.grad = None
        rows = []
        live = [i for i, x in enumerate(self.losses) if x.requires_grad]
        for i, loss in enumerate(self.losses):
            if i in live:
                loss.backward(retain_graph=i != live[-1])
            rows.append(flatten([p.grad for p in self.shared], self.shared))
            for p in self.shared:
                p.grad = None
        for p, g in zip(self.shared, before):
            p.grad = g
        return torch.stack(rows) if rows else torch.zeros(0, 0)

    def _by_representation(self) -> Tensor:
        self.rep_grads, matrix = representation_gradients(self.losses, self.edges)
        return matrix

    def apply(self, weights: Tensor) -> None:
        w = weights.to(self.matrix.dtype)
        if self.on == "parameters":
            if self.shared:
                write_grad(self.shared, w @ self.matrix)
            return
        live = [x for x in self.losses if x.requires_grad]
        if not live:
            return
        total = torch.stack(live).sum()
        handles = []
        for i, edge in enumerate(self.edges):  # replace the representation's incoming gradient
            combined = sum(w[t] * g[i] for t, g in enumerate(self.rep_grads) if g[i] is not None)
            handles.append(edge.node.register_prehook(_replace(edge.output_nr, combined)))
        try:
            total.backward()
        finally:
            for h in handles:
                h.remove()


def _replace(index: int, grad: Tensor) -> Callable:
    def hook(grad_outputs: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
        out = list(grad_outputs)
        out[index] = grad.to(out[index].dtype) if out[index] is not None else grad
        return tuple(out)

    return hook


class GradientWeighting(LossWeighting):
    """Base of the methods that combine per-task gradients: a subclass defines ``combine(K, losses)``
    (the Gram matrix [T, T] float64 and the detached losses [T] -> weights [T]) and states its
    ``cost``. The last weights are kept in a buffer (saved with the run)."""

    cost = "T - 1 extra backward passes per step (on=representation: T partial ones through the towers)"

    def __init__(self, tasks: Sequence[TaskSpec], *, on: GradTarget = "parameters") -> None:
        super().__init__(tasks)
        self.on = on
        self.register_buffer("last_weights", torch.ones(len(self.tasks), dtype=torch.float64))

    def combine(self, k: Tensor, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.last_weights.tolist()))

    def backward(self, losses: dict[str, Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        grads = TaskGradients([losses[t] for t in self.names], shared, self.on)
        values = torch.stack([losses[t].detach() for t in self.names]).double()
        k = gram(grads.matrix)
        w = self.combine(k, values) if k.diagonal().sum() > 0 else torch.ones(len(self.names), dtype=torch.float64)
        grads.apply(w)
        self.last_weights.copy_(w)
        return self.weights()
