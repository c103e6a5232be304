"""The CUDA paths, on a machine with a GPU (benchmarks/gpu.sh runs this module there; elsewhere
every test skips saying CUDA is missing): a tiny model trained on the GPU ends where the CPU run
ends (to 1e-4), every weighting method and the row-wise optimizer run there, bf16 autocast trains,
the run records the GPU, and a run loads onto the GPU to predict and to serve the CPU's answers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mtlrec.artifacts import load_tensors, read_json
from mtlrec.config import ExperimentConfig
from mtlrec.device import module_device
from mtlrec.experiment import RunCheckpointer, run_experiment
from mtlrec.serve.predictor import Predictor
from mtlrec.serve.backend import TorchBackend
from mtlrec.weighting import WEIGHTINGS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available (GPU tests: benchmarks/gpu.sh)")


def train(tiny_config, out, *, weighting: str = "static", **train):
    raw = copy.deepcopy(tiny_config)
    raw["model"].update(name="mmoe", mmoe={"n_experts": 2, "expert_dims": [16]})  # dropout 0: no RNG on the device
    raw["weighting"] = {"name": weighting}
    raw["train"].update(epochs=2, **train)
    return run_experiment(ExperimentConfig.model_validate(raw), out)


def close(a: dict, b: dict, tol: float) -> None:
    for task, metrics in a.items():
        for name, value in metrics.items():
            assert value == pytest.approx(b[task][name], abs=tol, nan_ok=True), (task, name)


@pytest.mark.parametrize("update", ["rowwise", "dense"])
def test_training_on_cuda_ends_where_the_cpu_run_ends(tiny_config, tmp_path, update):
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products as the CPU computes them
    gpu = train(tiny_config, tmp_path / "gpu", device="cuda", embedding_update=update)
    cpu = train(tiny_config, tmp_path / "cpu", device="cpu", embedding_update=update)
    close(gpu["test"], cpu["test"], 1e-4)
    a, b = load_tensors(tmp_path / "gpu/model.safetensors"), load_tensors(tmp_path / "cpu/model.safetensors")
    assert all(a[k].device.type == "cpu" for k in a)  # saved from the GPU as CPU tensors
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    recorded = read_json(tmp_path / "gpu/run.json")["trained_on"]
    assert recorded["device"] == f"cuda:{torch.cuda.current_device()}"
    assert recorded["device_name"] == torch.cuda.get_device_name()


@pytest.mark.parametrize("weighting", WEIGHTINGS.names())
def test_every_weighting_trains_on_cuda(tiny_config, tmp_path, weighting):
    metrics = train(tiny_config, tmp_path / weighting, weighting=weighting, device="cuda", epochs=1)
    assert 0.5 < metrics["test"]["click"]["auc"] < 1.0


def test_bfloat16_autocast_trains_on_cuda(tiny_config, tmp_path):
    metrics = train(tiny_config, tmp_path / "bf16", device="cuda", precision="bfloat16")
    reference = train(tiny_config, tmp_path / "fp32", device="cuda")
    assert abs(metrics["test"]["click"]["auc"] - reference["test"]["click"]["auc"]) < 0.01
    assert read_json(tmp_path / "bf16/run.json")["trained_on"]["precision"] == "bfloat16"


class Stop(Exception):
    pass


def test_a_run_stopped_on_cuda_resumes_where_it_stopped(tiny_config, tmp_path, monkeypatch):
    whole = train(tiny_config, tmp_path / "whole", device="cuda", checkpoint_every=3)
    save = RunCheckpointer.save

    def save_then_stop(self, state):
        save(self, state)
        if state.global_step == 6:  # mid-epoch 1 (10 steps an epoch)
            raise Stop

    monkeypatch.setattr(RunCheckpointer, "save", save_then_stop)
    with pytest.raises(Stop):
        train(tiny_config, tmp_path / "part", device="cuda", checkpoint_every=3)
    monkeypatch.undo()
    raw = copy.deepcopy(tiny_config)
    raw["model"].update(name="mmoe", mmoe={"n_experts": 2, "expert_dims": [16]})
    raw["weighting"] = {"name": "static"}
    raw["train"].update(epochs=2, device="cuda", checkpoint_every=3)
    resumed = run_experiment(ExperimentConfig.model_validate(raw), tmp_path / "part", resume=True)
    close(resumed["test"], whole["test"], 1e-5)  # (GPU scatter-adds may sum in another order)


def test_predict_and_serve_on_cuda_give_the_cpu_answers(trained_run, shop_table):
    gpu, cpu = Predictor.load(trained_run, "cuda"), Predictor.load(trained_run, "cpu")
    assert module_device(gpu.model).type == "cuda"
    rows = shop_table.slice(0, 2000)
    a, b = gpu.predict(rows), cpu.predict(rows)
    assert all(np.allclose(a[k], b[k], atol=1e-5) for k in a)
    batch = cpu.encoder.transform(rows, labels=False).take(slice(0, 64))  # a request's rows, on the CPU
    got = TorchBackend(gpu.model, gpu.encoder.targets_)(batch)
    want = TorchBackend(cpu.model, cpu.encoder.targets_)(batch)
    assert all(isinstance(v, np.ndarray) and np.allclose(v, want[k], atol=1e-5) for k, v in got.items())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices (NCCL, one GPU per process)")
def test_two_gpus_train_the_one_gpu_model(tiny_config, tmp_path, torchrun):
    """torchrun on NCCL, one GPU per process (LOCAL_RANK): the model of one GPU to 1e-4, row-wise
    tables (sparse gradients all-gathered) included; a multi-GPU machine's check (gpu.sh runs it)."""
    import yaml

    torch.backends.cuda.matmul.allow_tf32 = False
    train(tiny_config, tmp_path / "one", device="cuda")
    raw = copy.deepcopy(tiny_config)
    raw["model"].update(name="mmoe", mmoe={"n_experts": 2, "expert_dims": [16]})
    raw["train"].update(epochs=2, device="cuda")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    done = torchrun(["-m", "mtlrec", "train", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "two"),
                     "--no-report", "--quiet"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_json(tmp_path / "two/run.json")["trained_on"]["processes"] == 2
    a, b = load_tensors(tmp_path / "one/model.safetensors"), load_tensors(tmp_path / "two/model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
