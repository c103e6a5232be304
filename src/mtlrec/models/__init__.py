"""Multi-task models, registered by name. ``build_model`` turns the config into a model."""

from __future__ import annotations

from typing import Sequence

from mtlrec.config import ModelConfig
from mtlrec.hyper import build_registered
from mtlrec.models import shared_bottom, single_task  # noqa: F401  (registers)
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.spec import InputLayout, TaskSpec

COMMON = ("embedding_dim", "tower_dims", "dropout")


def build_model(cfg: ModelConfig, layout: InputLayout, tasks: Sequence[TaskSpec]) -> MultiTaskModel:
    common = {k: getattr(cfg, k) for k in COMMON}
    return build_registered(MODELS, cfg, "model", layout, tasks, common=common)


__all__ = ["MODELS", "MultiTaskModel", "build_model"]
