"""Loss-weighting methods, registered by name. ``build_weighting`` turns the config into one."""

from __future__ import annotations

from typing import Sequence

from mtlrec.config import WeightingConfig
from mtlrec.hyper import build_registered
from mtlrec.spec import TaskSpec
from mtlrec.weighting import (  # noqa: F401  (registers)
    cagrad,
    dwa,
    famo,
    gradnorm,
    mgda,
    nash_mtl,
    pcgrad,
    rlw,
    static,
    uncertainty,
)
from mtlrec.weighting.base import WEIGHTINGS, LossWeighting


def build_weighting(cfg: WeightingConfig, tasks: Sequence[TaskSpec]) -> LossWeighting:
    return build_registered(WEIGHTINGS, cfg, "weighting", tasks)


__all__ = ["WEIGHTINGS", "LossWeighting", "build_weighting"]
