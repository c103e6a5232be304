"""Multi-task models, registered by name. ``build_model`` turns the config into a model."""

from __future__ import annotations

from typing import Sequence

from mtlrec.config import ModelConfig
from mtlrec.hyper import build_registered
from mtlrec.models import aitm, cross_stitch, esmm, mmoe, omoe, ple, shared_bottom, single_task  # noqa: F401
from mtlrec.models.base import MODELS, DerivedTask, MultiTaskModel
from mtlrec.models.task_paths import TaskPaths, attach_task_paths
from mtlrec.spec import InputLayout, TaskSpec

COMMON = ("embedding_dim", "tower_dims", "dropout", "bottom", "cross_layers")


def build_model(cfg: ModelConfig, layout: InputLayout, tasks: Sequence[TaskSpec]) -> MultiTaskModel:
    common = {k: getattr(cfg, k) for k in COMMON}
    model = build_registered(MODELS, cfg, "model", layout, tasks, common=common)
    if not cfg.task_paths or model.independent:
        return model
    paths = TaskPaths(model, cfg.task_paths, embedding_dim=cfg.embedding_dim, dims=cfg.task_path_dims,
                      dropout=cfg.dropout, bottom=cfg.bottom, cross_layers=cfg.cross_layers)  # fmt: skip
    return attach_task_paths(model, paths)


__all__ = ["MODELS", "DerivedTask", "MultiTaskModel", "build_model"]
