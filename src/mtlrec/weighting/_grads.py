"""The one copy of the gradient helpers: per-task gradients on the shared part of a model, the
combined gradient written back, and the base class of the gradient-manipulation methods.

Every gradient method here (PCGrad, MGDA, CAGrad, Nash-MTL) turns the per-task gradients
``g_1..g_T`` into a shared update ``sum_t w_t g_t`` whose coefficients ``w`` depend on the
gradients only through their Gram matrix ``K = G G^T`` ([T, T]). So a method is one function
``K -> w``; how the gradients are taken is chosen by one hyperparameter, ``on``:

``parameters`` (default): the flattened gradient on every shared parameter
    (``shared.parameters``: those that two or more loss tasks reach, the embedding table
    included; see models/sharing.py). Exact, as in the papers. Cost: T backward passes per step
    instead of one (T - 1 extra), plus T copies of the shared gradient (with a large embedding
    table this is what dominates).
``representation``: the gradient on the shared representation (``shared.representation``): the
    tensors at the boundary of the shared part of the network, computed from shared parameters
    only and reached by two or more tasks, met first on the way down from the losses (found once
    per model, captured from each step's forward pass). Per model family:
      shared_bottom: the bottom MLP's output;
      mmoe: the experts' stacked output [B, n, D] and the embedded features (which the
        task-specific gates read too); omoe: the experts' output and the one gate's weights;
      ple: the embedded features (the task gates' input), level 1's shared and task experts'
        outputs (with two or more levels every task reaches level 1's task experts through its
        shared gate), and the last level's shared experts' output; CGC (one level): the
        embedded features and the shared experts' output;
      cross_stitch: the last layer's column outputs, which the last cross-stitch unit mixes
        (its rows are each task's own);
      esmm: the embedded features and the CTR tower's logit (click and click_and_purchase
        both read it); aitm: the embedded features, the click encoder's output (read by the
        click tower and by the transfer to the next step) and, with the calibrator on, the
        click tower's logit (click_and_purchase's calibrator reads it);
      single_task: nothing (the plain sum).
    A task's row of the matrix is its gradient on all of them, concatenated. This is MGDA-UB
    (Sener & Koltun, 2018): the per-task gradients stop there, so they cost T backward passes
    through the towers only, plus one full backward pass. Each of these tensors' incoming
    gradient is replaced by ``sum_t w_t`` of the tasks' gradients on it, which then flows into
    all shared parameters below it; no task's own parameter lies below them.

Either way each task's own parameters (its tower, its gate) get that task's plain gradient
(weight 1), as in LibMTL; only the shared parameters get the combined update.

A task absent from the batch (its masked loss exactly 0: no row of its sample space; see
``present``) has no gradient and takes no part in the solve: its weight is 0 and the method sees
the others only, so that its zero gradient does not become, e.g., MGDA's min-norm point.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from mtlrec.distributed import World
from mtlrec.spec import TaskSpec
from mtlrec.weighting.base import LossWeighting, SharedPart, present

GradTarget = Literal["parameters", "representation"]


def flatten(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    """One [P] vector from per-tensor gradients (None, for an unused tensor, becomes zeros)."""
    if not like:
        return torch.zeros(0)  # nothing shared: an empty row (on the CPU; there is nothing to place)
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


def global_gram(matrix: Tensor, on: GradTarget, world: World) -> Tensor:
    """[T, T] float64: the Gram matrix of the task gradients of the global batch, from this rank's
    [T, P] ``matrix`` (that of its scaled losses; distributed.py). On parameters the global
    gradient is the ranks' mean; on the representation each rank's rows are its own, so the global
    matrix is the ranks' matrices side by side (over ``size``) and its Gram is their Grams' sum."""
    if world.size == 1:
        return gram(matrix)
    if on == "parameters":
        return gram(world.sum(matrix.clone()) / world.size)
    return world.sum(gram(matrix)) / world.size**2


def global_norms(matrix: Tensor, on: GradTarget, world: World) -> Tensor:
    """[T]: each task's gradient norm on the global batch (``global_gram``'s diagonal, rooted)."""
    if world.size == 1:
        return matrix.norm(dim=1)
    return global_gram(matrix, on, world).diagonal().sqrt().to(matrix.dtype)


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


def representation_edges(tensors: Sequence[Tensor]) -> list[GradientEdge]:
    """The autograd edges of the representation tensors that are in a graph, each once (two
    modules may output the same tensor)."""
    edges: dict[tuple[int, int], GradientEdge] = {}
    for x in tensors:
        if x.grad_fn is not None:
            edge = get_gradient_edge(x)
            edges.setdefault((id(edge.node), edge.output_nr), edge)
    return list(edges.values())


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
    device = next((g.device for grads in per_loss for g in grads if g is not None), None)
    rows = [
        torch.cat([(g if g is not None else torch.zeros(s, device=device)).reshape(-1) for g, s in zip(grads, shapes)])
        if shapes
        else torch.zeros(0)  # no representation: an empty row (on the CPU; there is nothing to place)
        for grads in per_loss
    ]
    return per_loss, torch.stack(rows)


def task_gradients(losses: Sequence[Tensor], shared: SharedPart, on: GradTarget) -> Tensor:
    """[T, P]: each loss's gradient on the shared parameters or representation. Touches no
    ``.grad`` and keeps the graph (the caller still runs its own backward pass)."""
    if on == "parameters":
        return parameter_gradients(losses, [p for p in shared.parameters if p.requires_grad], keep_graph=True)
    return representation_gradients(losses, representation_edges(shared.representation))[1]


class TaskGradients:
    """The per-task gradients of one step and how to apply a combination of them.

    ``matrix``: [T, P] (rows in the order of ``losses``); ``apply(w)`` sets every ``.grad``: the
    shared part gets ``sum_t w_t g_t``, each task's own parameters their plain gradient."""

    def __init__(self, losses: Sequence[Tensor], shared: SharedPart, on: GradTarget) -> None:
        self.losses = list(losses)
        self.on = on
        if on == "parameters":
            self.shared = [p for p in shared.parameters if p.requires_grad]
            self.matrix = self._by_parameters()
        else:
            self.edges = representation_edges(shared.representation)
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
        return torch.stack(rows) if rows else torch.zeros(0, 0)  # no task: empty (nothing to place)

    def _by_representation(self) -> Tensor:
        self.rep_grads, matrix = representation_gradients(self.losses, self.edges)
        return matrix

    def apply(self, weights: Tensor) -> None:
        w = weights.to(self.matrix.device, self.matrix.dtype)
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
            parts = [w[t] * g[i] for t, g in enumerate(self.rep_grads) if g[i] is not None]
            if parts:  # (no loss reaches a tensor of another forward pass: its node never runs)
                handles.append(edge.node.register_prehook(_replace(edge.output_nr, sum(parts))))
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
    ``cost``. ``combine`` sees the tasks present in the batch only (``solve``); the weights, 0 for
    an absent task, are kept in a buffer (saved with the run) and recorded each epoch."""

    cost = "T - 1 extra backward passes per step (on=representation: T partial ones through the towers)"

    def __init__(self, tasks: Sequence[TaskSpec], *, on: GradTarget = "parameters") -> None:
        super().__init__(tasks)
        self.on = on
        self.register_buffer("last_weights", torch.ones(len(self.tasks), dtype=torch.float64))

    def combine(self, k: Tensor, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.last_weights.tolist()))

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        grads = TaskGradients([losses[t] for t in self.names], shared, self.on)
        values = torch.stack([losses[t].detach() for t in self.names]).double()
        # the solvers' float64 [T, T] math runs on the CPU whatever the model's device: a few
        # hundred tiny ops, each a kernel launch and a sync on a GPU
        w = self.solve(global_gram(grads.matrix, self.on, self.world).cpu(), values.cpu())
        grads.apply(w)
        self.last_weights.copy_(w)
        return self.weights()

    def solve(self, k: Tensor, losses: Tensor) -> Tensor:
        """[T] weights: ``combine`` over the tasks present in the batch, 0 for the absent ones.
        One task present: the method's answer for that task alone (MGDA, PCGrad: weight 1). None
        present: every weight 0 (no task has a gradient). Present tasks whose gradients on the
        shared part are all zero (nothing shared): weight 1 each, the plain sum."""
        here = present(losses).nonzero().squeeze(1)
        w = torch.zeros(len(losses), dtype=torch.float64)
        if len(here) == 0:
            return w
        sub = k[here][:, here]
        w[here] = self.combine(sub, losses[here]).double() if float(sub.diagonal().sum()) > 0 else 1.0
        return w
