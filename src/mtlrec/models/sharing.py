"""What the tasks of a model share, found from the model itself, never listed by hand.

**Shared parameters**: those that two or more loss tasks reach. Task t reaches a parameter when the
gradient of t's loss on it is nonzero for generic values: measured once per model on a probe batch
(random rows built from the model's input layout and tasks with a seeded generator of its own; the
model in eval mode, so that no dropout mask is drawn and no gate records its weights), as the
gradient of a random projection of t's output logits and of the outputs that t's auxiliary loss
term reads (AITM's calibrator reads the click logit). Gradients, not the edges of the autograd
graph: there is one graph node per tensor, so after MMoE's one batched product of every gate's
weights (stack, bmm, unbind) every gate would look reached by every task, while the gradient on
another task's slice is exactly zero. Parameters holding exact zeros (a cross-stitch unit started
at ``keep: 1``) are perturbed for the probe and restored bit for bit, so that a connection which a
zero weight hides at the start still counts.

**Shared representation** (``on: representation`` of the gradient methods): the boundary of the
shared part of the network. Candidates are the tensors that the model's modules output on the
probe batch; a candidate qualifies when two or more loss tasks reach it and every parameter it is
computed from is shared (so no task's own parameter, e.g. a task's gate, lies below it). The
representation is the set of qualifying tensors met first on the way down from the losses: every
path from a loss to a shared parameter crosses one of them, so the combined gradient applied there
reaches every shared parameter as ``on: parameters`` would apply it, and each task's own
parameters above them keep their plain gradients. Each step's tensors are captured from those
modules' forward passes (forward hooks: ``shared_part.py``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.device import module_device
from mtlrec.spec import InputLayout, TaskSpec

if TYPE_CHECKING:
    from mtlrec.models.base import MultiTaskModel

PROBE_ROWS = 32
PROBE_SEED = 0
Key = tuple[str, int, int]  # (module name, call number within a forward pass, tensor number in its output)


@dataclass(frozen=True)
class Sharing:
    """The outcome of the probe: names of the shared parameters, and which module outputs make up
    the shared representation, in the order the forward pass computes them."""

    parameters: tuple[str, ...]
    representation: tuple[Key, ...]


def probe_batch(layout: InputLayout, tasks: Sequence[TaskSpec], generator: torch.Generator,
                rows: int = PROBE_ROWS) -> TensorBatch:  # fmt: skip
    """Random input rows in ``layout`` (every id in range, sequences not empty), labels of each
    task's kind and every row in every task's sample space."""
    cat = torch.stack([torch.randint(0, size, (rows,), generator=generator) for size in layout.cat_sizes], 1) \
        if layout.cat_sizes else torch.zeros(rows, 0, dtype=torch.long)  # fmt: skip
    width = max(layout.seq_lens, default=0)
    seq = torch.stack(
        [torch.randint(min(1, size - 1), size, (rows, width), generator=generator) for size in layout.seq_sizes], 1
    ) if layout.seq_sizes else torch.zeros(rows, 0, width, dtype=torch.long)  # fmt: skip
    dense = torch.randn(rows, layout.n_dense, generator=generator)
    labels = {t.name: _labels(t, rows, generator) for t in tasks}
    masks = {t.name: torch.ones(rows, dtype=torch.bool) for t in tasks}
    return TensorBatch(cat, seq, dense, labels, masks)


def _labels(task: TaskSpec, rows: int, generator: torch.Generator) -> Tensor:
    if task.kind == "multiclass":
        return torch.randint(0, task.out_dim, (rows,), generator=generator)
    if task.kind == "multilabel":
        return torch.randint(0, 2, (rows, task.out_dim), generator=generator).float()
    if task.kind == "binary":
        return torch.randint(0, 2, (rows,), generator=generator).float()
    if task.loss_name == "poisson":  # counts: a negative one has no deviance
        return torch.randint(0, 5, (rows,), generator=generator).float()
    return torch.randn(rows, generator=generator)


def find_sharing(model: MultiTaskModel) -> Sharing:
    """Probe ``model`` (module docstring). Leaves its parameters, modes, gradients and the global
    random number generator as they were."""
    generator = torch.Generator().manual_seed(PROBE_SEED)  # on the CPU: the same probe on every device
    device = module_device(model)
    batch = probe_batch(model.layout, model.tasks, generator).to(device)
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    outputs: list[tuple[Key, Tensor]] = []
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    calls: dict[str, int] = defaultdict(int)

    def record(name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            k, calls[name] = calls[name], calls[name] + 1
            for i, x in enumerate(output_tensors(output)):
                if x.grad_fn is not None and x.is_floating_point():
                    outputs.append(((name, k, i), x))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    try:
        with _probing(model, generator), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            out = model(batch)
            roots = _task_roots(model, out, batch, generator)
            candidates = _distinct(outputs, order)
            reach = _reach(roots, [*params, *(x for _, x in candidates)])
            shared = {id(p) for p, r in zip(params, reach) if len(r) >= 2}
            qualifying = {
                (id(x.grad_fn), x.output_nr): key
                for (key, x), r in zip(candidates, reach[len(params):])
                if len(r) >= 2 and _upstream(x) <= shared
            }
            frontier = _frontier(roots.values(), qualifying)
    finally:
        for h in handles:
            h.remove()
    return Sharing(
        parameters=tuple(names[id(p)] for p in params if id(p) in shared),
        representation=tuple(key for key, _ in candidates if key in frontier),  # in the order computed
    )


@contextlib.contextmanager
def _probing(model: nn.Module, generator: torch.Generator) -> Iterator[None]:
    """Eval mode, and parameters that hold an exact zero nudged (embedding tables aside: a lookup
    reaches its rows whatever they hold); both undone on leaving."""
    modes = {m: m.training for m in model.modules()}
    tables = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
    saved = {}
    try:
        model.eval()
        with torch.no_grad():
            for p in model.parameters():
                if id(p) not in tables and p.is_floating_point() and bool((p == 0).any()):
                    saved[p] = p.detach().clone()
                    p.add_(1e-3 * torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device))
        yield
    finally:
        with torch.no_grad():
            for p, value in saved.items():
                p.copy_(value)
        for m, mode in modes.items():
            m.training = mode


def _task_roots(model: MultiTaskModel, out: dict[str, Tensor], batch: TensorBatch,
                generator: torch.Generator) -> dict[str, Tensor]:  # fmt: skip
    """{loss task: scalar} whose gradient reaches what the task's loss reaches: a random projection
    of its logits and of the logits its auxiliary term reads (found with the outputs as leaves, so
    that a term that happens to be flat on the probe, e.g. a hinge, still counts)."""
    leaves = {name: v.detach().requires_grad_() for name, v in out.items()}
    aux = model.auxiliary_losses(leaves, batch)
    roots = {}
    for task in model.loss_tasks:
        reads = {task.name}
        if task.name in aux and aux[task.name].requires_grad:
            used = torch.autograd.grad(aux[task.name], list(leaves.values()), retain_graph=True, allow_unused=True)
            reads |= {name for name, g in zip(leaves, used) if g is not None}
        roots[task.name] = sum(
            (torch.randn(out[n].shape, generator=generator, dtype=out[n].dtype).to(out[n].device) * out[n]).sum()
            for n in sorted(reads)
        )
    return roots


def _reach(roots: dict[str, Tensor], targets: Sequence[Tensor]) -> list[set[str]]:
    """For each target tensor: the tasks whose root has a nonzero gradient on it."""
    reach: list[set[str]] = [set() for _ in targets]
    for task, root in roots.items():
        if not root.requires_grad:
            continue
        grads = torch.autograd.grad(root, list(targets), retain_graph=True, allow_unused=True)
        for r, g in zip(reach, grads):
            if g is not None and bool((g.coalesce().values() if g.is_sparse else g).ne(0).any()):
                r.add(task)
    return reach


def _upstream(x: Tensor) -> set[int]:
    """ids of the parameters (leaves) that ``x`` is computed from, from the autograd graph."""
    found, seen, stack = set(), set(), [x.grad_fn]
    while stack:
        node = stack.pop()
        if hasattr(node, "variable"):  # AccumulateGrad: a leaf
            found.add(id(node.variable))
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return found


def _frontier(roots: Sequence[Tensor], qualifying: dict[tuple[int, int], Key]) -> set[Key]:
    """The qualifying tensors met first on the way down from ``roots`` (not looking past them)."""
    found: set[Key] = set()
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    seen = set(stack)
    while stack:
        for child, nr in stack.pop().next_functions:
            if child is None:
                continue
            key = qualifying.get((id(child), nr))
            if key is not None:
                found.add(key)
            elif child not in seen:
                seen.add(child)
                stack.append(child)
    return found


def _distinct(outputs: Sequence[tuple[Key, Tensor]], order: dict[str, int]) -> list[tuple[Key, Tensor]]:
    """One entry per distinct tensor (a Sequential returns its last layer's output, an Identity its
    input): the outermost module's, in the order the tensors were computed."""
    first: dict[tuple[int, int], tuple[int, Key, Tensor]] = {}
    for i, (key, x) in enumerate(outputs):
        edge = (id(x.grad_fn), x.output_nr)
        if edge not in first:
            first[edge] = (i, key, x)
        elif order[key[0]] < order[first[edge][1][0]]:
            first[edge] = (first[edge][0], key, x)
    return [(key, x) for _, key, x in sorted(first.values(), key=lambda v: v[0])]


def output_tensors(output: Any) -> list[Tensor]:
    """The tensors of a module's output (a tensor, or tuples, lists and dicts of them), in order."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [x for v in output for x in output_tensors(v)]
    if isinstance(output, dict):
        return [x for v in output.values() for x in output_tensors(v)]
    return []
