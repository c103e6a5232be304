"""model.task_paths: a named task gets its own embeddings and MLP beside any model, its logits
added to the model's own; the rest of the model is unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

from mtlrec.cli.main import main
from mtlrec.config import ExperimentConfig
from mtlrec.errors import ConfigError
from mtlrec.experiment import load_splits, run_experiment
from mtlrec.models import MODELS, build_model
from mtlrec.serve.predictor import Predictor
from mtlrec.train.trainer import training_losses

PATHS = ["user_segment", "interests"]


def build(name, layout, tasks, paths=()):
    cfg = ExperimentConfig.model_validate(
        {"model": {"name": name, "embedding_dim": 4, "tower_dims": [8], "task_paths": list(paths),
                   "task_path_dims": [8]}}  # fmt: skip
    ).model
    torch.manual_seed(0)
    return build_model(cfg, layout, tasks)


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n != "single_task"])
def test_a_path_adds_its_logits_to_its_task_only(name, shop):
    schema, layout, data = shop
    batch = data.take(slice(0, 256))
    plain, with_paths = build(name, layout, schema.tasks), build(name, layout, schema.tasks, PATHS)
    want, got = plain(batch), with_paths(batch)
    assert list(got) == list(want)
    for task in got:
        extra = with_paths.task_paths.nets[task](batch).reshape(want[task].shape) if task in PATHS else 0.0
        torch.testing.assert_close(got[task], want[task] + extra, msg=task)
    assert all((got[t] - want[t]).abs().sum() > 0 for t in PATHS)  # the paths are not zeros


def test_a_path_is_task_specific(shop):
    """Its parameters are not shared (gradient methods leave them alone) and only its task's loss
    reaches them."""
    schema, layout, data = shop
    model = build("mmoe", layout, schema.tasks, ["interests"])
    own = set(map(id, model.task_paths.parameters()))
    assert own and not own & set(map(id, model.shared_parameters()))
    losses = training_losses(model, data.take(slice(0, 256)))
    losses["click"].backward(retain_graph=True)
    assert all(p.grad is None for p in model.task_paths.parameters())
    losses["interests"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.task_paths.parameters())


def test_a_deep_copy_uses_its_own_paths(shop):
    schema, layout, data = shop
    batch = data.take(slice(0, 64))
    model = build("mmoe", layout, schema.tasks, ["interests"])
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.task_paths.nets["interests"].out.bias.add_(1.0)
    shift = twin(batch)["interests"] - model(batch)["interests"]
    torch.testing.assert_close(shift, torch.ones_like(shift))


def test_single_task_already_has_a_path_per_task(shop):
    schema, layout, _ = shop
    plain, with_paths = build("single_task", layout, schema.tasks), build("single_task", layout, schema.tasks, PATHS)
    assert not hasattr(with_paths, "task_paths")
    assert sum(p.numel() for p in with_paths.parameters()) == sum(p.numel() for p in plain.parameters())


@pytest.mark.parametrize(
    "name, paths, message",
    [
        ("mmoe", ["basket"], r"model\.task_paths: 'basket' is not a task of the schema \(tasks: click, "),
        ("mmoe", ["interests", "interests"], r"model\.task_paths: a task is named twice"),
        ("esmm", ["purchase"], r"model\.task_paths: 'purchase' is in esmm's funnel"),
        ("aitm", ["click"], r"model\.task_paths: 'click' is in aitm's funnel"),
    ],
)
def test_bad_paths_are_config_errors(shop, name, paths, message):
    schema, layout, _ = shop
    with pytest.raises(ConfigError, match=message):
        build(name, layout, schema.tasks, paths)


def test_a_run_with_paths_round_trips_its_run_directory(tiny_config, tmp_path, metrics_close, capsys):
    raw = copy.deepcopy(tiny_config)
    raw["model"] = {"name": "mmoe", "embedding_dim": 4, "tower_dims": [8], "task_paths": PATHS, "task_path_dims": [8]}
    metrics = run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "run")
    predictor = Predictor.load(tmp_path / "run")
    assert set(predictor.model.task_paths.nets) == set(PATHS)
    result = predictor.evaluate(load_splits(predictor.config)[1]["test"], where="the test split")
    metrics_close(result["data"], metrics["test"])
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "run")]) == 0
    assert "task paths (own embeddings + MLP [8]): user_segment (" in capsys.readouterr().out
