"""Multi-task models, registered by name. ``build_model`` turns the config into a model."""

from __future__ import annotations

from typing import Sequence

from mtlrec.config import ModelConfig
from mtlrec.hyper import build_registered
from mtlrec.models import aitm, cross_stitch, esmm, mmoe, omoe, ple, shared_bottom, single_task  # noqa: F401
from mtlrec.models.base import MODELS, DerivedTask, MultiTaskModel
from mtlrec.spec import InputLayout, TaskSpec

COMMON = ("embedding_dim", "tower_dims", "dropout", "bottom", "cross_layers")


def build_model(cfg: ModelConfig, layout: InputLayout, tasks: Sequence[TaskSpec]) -> MultiTaskModel:
    common = {k: getattr(cfg, k) for k in COMMON}
    return build_registered(MODELS, cfg, "model", layout, tasks, common=common)


__all__ = ["MODELS", "DerivedTask", "MultiTaskModel", "build_model"]
