"""Fixtures of the model tests: the simulated shop's default schema, encoded."""

from __future__ import annotations

import pytest

from mtlrec.data.encode import Encoder
from mtlrec.data.synthetic import default_schema


@pytest.fixture(scope="module")
def shop(shop_table):
    """(schema, layout, all 6000 rows encoded) of the session's simulated shop."""
    schema = default_schema()
    encoder = Encoder(schema).fit(shop_table)
    return schema, encoder.layout(), encoder.transform(shop_table)


def loss_reach(model, batch, representation: bool = False):
    """{parameter name: the loss tasks that reach it on ``batch``}, and with ``representation``
    also [the tasks that reach each tensor of ``model.shared().representation``]. Task t reaches a
    tensor when its masked loss has a nonzero gradient on it, or when an output that t's auxiliary
    term reads does (the term is added to t's loss; a hinge like AITM's calibrator may be flat on
    one batch and not on the next, so what it reads counts, not its value here)."""
    import torch

    from mtlrec.losses import task_losses

    out = model(batch)
    losses = task_losses(model.loss_tasks, out, model.with_derived(batch))
    aux = model.auxiliary_losses(out, batch)
    g = torch.Generator().manual_seed(0)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    reps = list(model.shared().representation) if representation else []
    targets = [p for _, p in named] + reps
    reach: list[set[str]] = [set() for _ in targets]
    for task, loss in losses.items():
        terms = [loss]
        if task in aux:
            read = torch.autograd.grad(aux[task], list(out.values()), retain_graph=True, allow_unused=True)
            terms += [(torch.randn(v.shape, generator=g) * v).sum() for v, r in zip(out.values(), read) if r is not None]
        for term in terms:
            grads = torch.autograd.grad(term, targets, retain_graph=True, allow_unused=True)
            for r, grad in zip(reach, grads):
                if grad is not None and bool(grad.ne(0).any()):
                    r.add(task)
    by_name = {n: r for (n, _), r in zip(named, reach)}
    return (by_name, reach[len(named):]) if representation else by_name


@pytest.fixture(scope="session", name="loss_reach")
def loss_reach_fixture():
    """``loss_reach`` as a fixture (test modules are imported by path)."""
    return loss_reach
