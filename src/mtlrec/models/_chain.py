"""The conversion funnel (click -> purchase) that ESMM and AITM model, read from the tasks' sample
spaces, and log-probability helpers for the joint outputs along it."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from mtlrec.errors import ConfigError
from mtlrec.models.base import DerivedTask
from mtlrec.spec import TaskSpec

# the largest log-probability a joint output takes, so its logit stays finite (about 16.1)
MAX_LOG_PROB = -1e-7


def task_chain(tasks: Sequence[TaskSpec], chain: Sequence[str], where: str) -> tuple[TaskSpec, ...]:
    """The ordered funnel of binary tasks, each ``where:`` the previous one's label.

    ``chain`` names it (``[click, add_to_cart]``); empty: the longest funnel in the schema, ties
    going to the one whose last task comes later (``click -> purchase`` when add_to_cart and
    purchase are both ``where: click``). ``where`` names the config key in errors.
    """
    binary = {t.name: t for t in tasks if t.kind == "binary"}
    by_label = {t.source: t for t in binary.values()}
    if chain:
        bad = [n for n in chain if n not in binary]
        if bad:
            raise ConfigError(f"{where}.chain: '{bad[0]}' is not a binary task of the schema "
                              f"(binary tasks: {', '.join(binary) or 'none'})")  # fmt: skip
        if len(chain) < 2 or len(set(chain)) < len(chain):
            raise ConfigError(f"{where}.chain: expected two or more different tasks, e.g. [click, purchase]")
        for prev, name in zip(chain, chain[1:]):
            if binary[name].where != binary[prev].source:
                raise ConfigError(
                    f"{where}.chain: '{name}' follows '{prev}', so its sample space must be "
                    f"`where: {binary[prev].source}` (it is {binary[name].where or 'all rows'})"
                )
        return tuple(binary[n] for n in chain)
    best: list[TaskSpec] = []
    for t in binary.values():  # schema order: a later funnel of the same length wins
        path = [t]
        while path[0].where in by_label and by_label[path[0].where] not in path:
            path.insert(0, by_label[path[0].where])
        if len(path) >= 2 and len(path) >= len(best):
            best = path
    if not best:
        raise ConfigError(
            f"{where}: needs a funnel of binary tasks, e.g. click and a task with `where: click` "
            f"(purchase); this schema has none ({where}.chain names one)"
        )
    return tuple(best)


def joint_tasks(chain: Sequence[TaskSpec], tasks: Sequence[TaskSpec], where: str) -> tuple[DerivedTask, ...]:
    """One derived output per funnel step after the first: ``click_and_purchase`` = P(click and
    purchase), trained on the first task's sample space (all impressions)."""
    out = []
    for i in range(1, len(chain)):
        name = "_and_".join(t.name for t in chain[: i + 1])
        if any(t.name == name for t in tasks):
            raise ConfigError(f"{where}: the joint output '{name}' has the name of a task of the schema; rename that task")
        spec = TaskSpec(name, "binary", weight=chain[i].weight)
        out.append(DerivedTask(spec, tuple(t.name for t in chain[: i + 1])))
    return tuple(out)


def logit_of(log_prob: Tensor) -> Tensor:
    """log p -> log(p / (1 - p)), stable for p near 0 and near 1 (capped at MAX_LOG_PROB)."""
    lp = log_prob.clamp(max=MAX_LOG_PROB)
    log1m = torch.where(lp > -0.6931, torch.log(-torch.expm1(lp)), torch.log1p(-torch.exp(lp)))
    return lp - log1m
