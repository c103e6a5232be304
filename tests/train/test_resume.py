"""Exact resume: a run killed at any step (SIGKILL, in a child process) and resumed with
``--resume`` ends with the same metrics.json, weights and history as the same run left alone; and
the checkpoints it resumes from are written as a set."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mtlrec.artifacts import load_tensors, read_history, read_json
from mtlrec.config import ExperimentConfig
from mtlrec.errors import ConfigError, RunError
from mtlrec.experiment import run_experiment
from mtlrec.train.checkpoints import (
    checkpoints,
    flatten,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unflatten,
)

CASES = {  # weighting -> model: a plain method, a gradient method (global RNG), a stateful one
    "static": "mmoe",  # gates' utilisation accumulators; dropout draws from torch's generator
    "pcgrad": "shared_bottom",  # random projection order from torch's generator
    "famo": "shared_bottom",  # per-step state updated after each step
}


def config(tiny_config, weighting: str) -> dict:
    raw = copy.deepcopy(tiny_config)
    raw["model"].update(name=CASES[weighting], dropout=0.1)
    raw["model"]["mmoe"] = {"n_experts": 2, "expert_dims": [16]}
    raw["weighting"] = {"name": weighting}
    raw["train"].update(checkpoint_every=3, epochs=2, patience=5)  # 10 steps per epoch
    return raw


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_config_shared):
    """Each case trained once without interruption."""
    runs = {}
    for weighting in CASES:
        out = tmp_path_factory.mktemp("reference") / weighting
        run_experiment(ExperimentConfig.model_validate(config(tiny_config_shared, weighting)), out)
        runs[weighting] = out
    return runs


def untimed(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in rows]


def assert_same_run(got, want, metrics_close) -> None:
    got_metrics, want_metrics = read_json(got / "metrics.json"), read_json(want / "metrics.json")
    assert got_metrics["best_epoch"] == want_metrics["best_epoch"]
    for split in ("valid", "test"):
        metrics_close(got_metrics[split], want_metrics[split], tol=1e-6)
    a, b = load_tensors(got / "model.safetensors"), load_tensors(want / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert untimed(read_history(got)) == untimed(read_history(want))


STEP_5 = ("step", 5)  # mid-epoch 1, between the checkpoints of steps 3 and 6
STEP_14 = ("step", 14)  # mid-epoch 2, after the epoch-end checkpoint (step 10) and step 13's
SAVED_2 = ("saved", 2)  # right after the checkpoint of step 6 is written
SAVED_4 = ("saved", 4)  # right after the checkpoint of epoch 1's end
KILLS = [("static", k) for k in (STEP_5, STEP_14, SAVED_2, SAVED_4)]
KILLS += [("pcgrad", STEP_14), ("pcgrad", SAVED_2), ("famo", STEP_5), ("famo", SAVED_4)]


@pytest.mark.parametrize(("weighting", "kill"), KILLS, ids=[f"{w}-{k[0]}{k[1]}" for w, k in KILLS])
def test_a_killed_run_resumes_exactly(weighting, kill, reference, tiny_config, tmp_path, metrics_close, kill_child):
    where, n = kill
    raw = config(tiny_config, weighting)
    out = tmp_path / "run"
    kill_child(raw, out, where, n)
    assert not (out / "run.json").exists() and not (out / "metrics.json").exists()
    run_experiment(ExperimentConfig.model_validate(raw), out, resume=True)
    assert_same_run(out, reference[weighting], metrics_close)
    assert len(checkpoints(out)) == 1  # after the end: the last one, for a warm start


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(
    reference, tiny_config, tmp_path, metrics_close, kill_child
):
    raw = config(tiny_config, "static")
    out = tmp_path / "run"
    kill_child(raw, out, "writing", 3)  # the third save dies between its files and its rename
    assert [p.name for p in checkpoints(out)] == ["step-0000000003", "step-0000000006"]
    assert any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())
    run_experiment(ExperimentConfig.model_validate(raw), out, resume=True)
    assert_same_run(out, reference["static"], metrics_close)
    assert not any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())


def test_a_kill_from_outside_at_any_moment(reference, tiny_config, tmp_path, metrics_close, killing_child):
    """SIGKILL sent by this test, by pid, at whatever moment the child has reached after its first
    checkpoint."""
    raw = config(tiny_config, "static")
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", killing_child, json.dumps(raw), str(out), "step", "0"])
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(out) is None and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    run_experiment(ExperimentConfig.model_validate(raw), out, resume=True)
    assert_same_run(out, reference["static"], metrics_close)


def test_resume_refuses_a_changed_config_and_names_the_key(tiny_config, tmp_path, kill_child):
    raw = config(tiny_config, "static")
    out = tmp_path / "run"
    kill_child(raw, out, "step", 5)
    changed = copy.deepcopy(raw)
    changed["train"]["threads"] = 2  # may change the order of floating-point sums
    with pytest.raises(ConfigError, match=r"train.threads: 2 here but None"):
        run_experiment(ExperimentConfig.model_validate(changed), out, resume=True)
    changed = copy.deepcopy(raw)
    changed["train"]["lr"] = 0.01
    with pytest.raises(ConfigError, match=r"train.lr: 0.01 here but 0.001 in the run being resumed"):
        run_experiment(ExperimentConfig.model_validate(changed), out, resume=True)
    changed = copy.deepcopy(raw)
    changed["train"].update(checkpoint_every=4, keep_checkpoints=3)  # changes nothing the run computes
    run_experiment(ExperimentConfig.model_validate(changed), out, resume=True)
    assert (out / "run.json").is_file()


def test_resume_without_a_checkpoint_starts_afresh_and_a_complete_run_is_left_alone(
    tiny_config, tmp_path, capsys, kill_child
):
    raw = config(tiny_config, "static")
    out = tmp_path / "run"
    kill_child(raw, out, "step", 2)  # before the first checkpoint
    assert latest_checkpoint(out) is None
    first = run_experiment(ExperimentConfig.model_validate(raw), out, resume=True)
    assert "no checkpoint to resume from; starting afresh" in capsys.readouterr().err
    info = read_json(out / "run.json")
    assert run_experiment(ExperimentConfig.model_validate(raw), out, resume=True) == first
    assert "the run is complete; nothing to resume" in capsys.readouterr().err
    assert read_json(out / "run.json") == info  # not rewritten
    with pytest.raises(ConfigError, match="choose one"):
        run_experiment(ExperimentConfig.model_validate(raw), out, resume=True, overwrite=True)


def test_an_unfinished_run_is_not_served_or_evaluated(tiny_config, tmp_path, kill_child):
    from mtlrec.serve.predictor import Predictor

    raw = config(tiny_config, "static")
    out = tmp_path / "run"
    kill_child(raw, out, "step", 14)
    with pytest.raises(RunError, match=r"not a complete run directory.*--resume"):
        Predictor.load(out)


# -- the checkpoint format ---------------------------------------------------------------------
def test_flatten_keeps_what_json_would_lose():
    state = {
        "t": torch.arange(6).view(2, 3),
        "opt": {0: {"step": 3, "m": torch.ones(2)}, 7: {"step": torch.tensor(1.0)}},
        "betas": (0.9, 0.999),
        "nested": [{"a": float("nan"), "b": -float("inf")}, None, True, "x"],
        "np": np.arange(4, dtype=np.uint32),
        "python_rng": (3, (1, 2, 3), None),
        "a.b": torch.zeros(1),
        "a": {"b": torch.ones(1)},  # the same path as the key above: kept apart
    }
    tensors: dict = {}
    skeleton = json.loads(json.dumps(flatten(state, tensors)))
    back = unflatten(skeleton, tensors)
    assert torch.equal(back["t"], state["t"]) and list(back["opt"]) == [0, 7]
    assert back["opt"][0]["step"] == 3 and torch.equal(back["opt"][7]["step"], torch.tensor(1.0))
    assert back["betas"] == (0.9, 0.999) and back["python_rng"] == (3, (1, 2, 3), None)
    assert np.isnan(back["nested"][0]["a"]) and back["nested"][0]["b"] == -float("inf")
    assert back["nested"][1:] == [None, True, "x"]
    assert back["np"].dtype == np.uint32 and back["np"].tolist() == [0, 1, 2, 3]
    assert torch.equal(back["a.b"], torch.zeros(1)) and torch.equal(back["a"]["b"], torch.ones(1))
    with pytest.raises(TypeError, match="cannot store object at '.x'"):
        flatten({"x": object()})


def test_checkpoints_are_kept_newest_first_and_read_back(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((2,), float(step))}, keep=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["step-0000000003", "step-0000000004"]
    latest = load_checkpoint(latest_checkpoint(tmp_path))
    assert latest["step"] == 4 and torch.equal(latest["w"], torch.full((2,), 4.0))
    save_checkpoint(tmp_path, 4, {"step": "again"}, keep=2)  # the same step again replaces it
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == "again"
    (latest_checkpoint(tmp_path) / "state.json").write_text("{broken")
    with pytest.raises(RunError, match="step-0000000004: not a readable checkpoint"):
        load_checkpoint(latest_checkpoint(tmp_path))
