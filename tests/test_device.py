"""train.device and train.precision (mtlrec/device.py) on any machine: resolving them (the CPU's
flags and CUDA's presence monkeypatched), the clear errors for a CUDA device that is not there,
an explicit cpu training exactly as the default does, what a run records and `inspect` shows, and
--device on the commands that load a run. tests/test_cuda.py runs the same paths on a GPU."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

import mtlrec.device as device_module
from mtlrec.artifacts import load_tensors, read_json
from mtlrec.cli.main import main
from mtlrec.config import ExperimentConfig, parse_config
from mtlrec.data.batches import TensorBatch
from mtlrec.device import Placement, cpu_info, module_device, resolve_device, resolve_precision
from mtlrec.errors import ConfigError
from mtlrec.experiment import run_experiment
from mtlrec.serve.predictor import Predictor

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without a GPU, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def cpu_flags(monkeypatch, *flags: str) -> None:
    monkeypatch.setattr(device_module, "cpu_info", lambda: ("Test CPU", set(flags)))


def test_cpu_info_reads_the_first_processors_model_and_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Xeon Test\nflags\t\t: fpu avx2 amx_bf16\n\n"
                    "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n")  # fmt: skip
    assert cpu_info(info) == ("Xeon Test", {"fpu", "avx2", "amx_bf16"})
    name, flags = cpu_info(tmp_path / "missing")  # macOS, Windows: no such file
    assert flags == set() and isinstance(name, str)


def test_auto_device_is_cuda_exactly_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)  # with its index
    assert resolve_device("cpu") == CPU


def test_cuda_without_a_gpu_is_a_config_error_naming_the_key(no_cuda):
    for setting in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=rf"^train.device: '{setting}', but CUDA is not available"):
            resolve_device(setting)
    with pytest.raises(ConfigError, match=r"^--device: 'cuda'"):
        resolve_device("cuda", key="--device")


def test_one_gpu_per_torchrun_process_by_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for setting in ("auto", "cuda"):
        assert resolve_device(setting, local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("cuda:1", local_rank=3) == torch.device("cuda", 1)  # an explicit index stands
    assert resolve_device("cpu", local_rank=3) == CPU
    with pytest.raises(ConfigError, match=r"train.device: 'cuda:4', but this machine has 4 CUDA device\(s\)"):
        resolve_device("cuda", local_rank=4)


def test_a_cuda_index_past_the_devices_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"train.device: 'cuda:2', but this machine has 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("setting", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_a_malformed_device_is_refused_naming_the_key(setting):
    with pytest.raises(ConfigError, match=r"train.device"):
        parse_config({"train": {"device": setting}})
    with pytest.raises(ConfigError, match=r"^train.device: expected auto, cpu, cuda or cuda:N"):
        resolve_device(setting)


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        (("avx2", "avx512f", "avx512_bf16"), "bfloat16"),
        (("avx2", "amx_bf16", "amx_tile"), "bfloat16"),
        (("avx2", "avx512f"), "float32"),  # AVX-512 without its bf16 extension: emulated, slow
        ((), "float32"),
    ],
)
def test_auto_precision_follows_the_cpus_bf16_instructions(monkeypatch, flags, want):
    cpu_flags(monkeypatch, *flags)
    assert resolve_precision("auto", CPU) == want
    assert resolve_precision("float32", CPU) == "float32"  # an explicit choice stands
    assert resolve_precision("bfloat16", CPU) == "bfloat16"


@pytest.mark.parametrize("supported", [True, False])
def test_auto_precision_on_cuda_asks_the_gpu(monkeypatch, supported):
    cpu_flags(monkeypatch, "avx512_bf16")  # the CPU's flags do not decide for a GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
    assert resolve_precision("auto", CUDA) == ("bfloat16" if supported else "float32")


def test_the_defaults_are_auto_device_and_float32():
    train = ExperimentConfig().train
    assert (train.device, train.precision) == ("auto", "float32")  # precision auto would change `make demo`


def test_placement_autocasts_on_its_devices_type_only_in_bfloat16():
    x = torch.randn(4, 4)
    with Placement(CPU, "bfloat16").autocast():
        assert (x @ x).dtype == torch.bfloat16
    with Placement(CPU, "float32").autocast():
        assert (x @ x).dtype == torch.float32


def test_a_batch_already_on_the_device_is_not_copied():
    batch = TensorBatch(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 0, 1, dtype=torch.long),
                        torch.ones(2, 3), {"click": torch.ones(2)}, {"click": torch.ones(2, dtype=torch.bool)})  # fmt: skip
    assert batch.to(CPU) is batch
    assert module_device(torch.nn.Linear(2, 2)) == CPU and module_device(torch.nn.ReLU()) == CPU


def train(tiny_config, out, **train):
    raw = copy.deepcopy(tiny_config)
    raw["model"].update(name="mmoe", mmoe={"n_experts": 2, "expert_dims": [16]})
    raw["weighting"] = {"name": "pcgrad"}  # the gradient helpers and the CPU solvers too
    raw["train"].update(epochs=1, **train)
    return run_experiment(ExperimentConfig.model_validate(raw), out)


def test_an_explicit_cpu_device_trains_exactly_as_the_default(tiny_config, tmp_path, no_cuda):
    default = train(tiny_config, tmp_path / "default")
    cpu = train(tiny_config, tmp_path / "cpu", device="cpu")
    assert cpu["test"] == default["test"]
    a, b = load_tensors(tmp_path / "default/model.safetensors"), load_tensors(tmp_path / "cpu/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    recorded = read_json(tmp_path / "cpu/run.json")["trained_on"]
    assert recorded == {"device": "cpu", "device_name": cpu_info()[0], "precision": "float32"}


@pytest.mark.parametrize(("flags", "want"), [(("avx512_bf16",), "bfloat16"), (("avx2",), "float32")])
def test_the_run_records_the_precision_auto_chose_and_inspect_shows_it(
    tiny_config, tmp_path, monkeypatch, capsys, no_cuda, flags, want
):
    cpu_flags(monkeypatch, *flags)
    out = tmp_path / "run"
    metrics = train(tiny_config, out, precision="auto")
    assert read_json(out / "run.json")["trained_on"] == {"device": "cpu", "device_name": "Test CPU", "precision": want}
    assert all(v["auc"] == v["auc"] for t, v in metrics["test"].items() if "auc" in v)  # trained, not NaN
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    assert f"trained on: cpu (Test CPU), precision {want}\n" in capsys.readouterr().out


def test_a_cuda_config_without_a_gpu_fails_before_the_run_starts(tiny_config, tmp_path, no_cuda):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")  # an earlier run there is left as it was
    with pytest.raises(ConfigError, match=r"^train.device: 'cuda', but CUDA is not available"):
        train(tiny_config, tmp_path / "run", device="cuda")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["run.json"]


def test_predictor_loads_onto_the_device_asked_for(trained_run, shop_table, no_cuda):
    auto, cpu = Predictor.load(trained_run, "auto"), Predictor.load(trained_run)
    assert module_device(auto.model) == CPU
    a, b = auto.predict(shop_table.slice(0, 500)), cpu.predict(shop_table.slice(0, 500))
    assert all((a[k] == b[k]).all() for k in a)
    with pytest.raises(ConfigError, match=r"^device: 'cuda:0', but CUDA is not available"):
        Predictor.load(trained_run, "cuda:0")


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_the_commands_that_load_a_run_refuse_a_missing_gpu_naming_device(
    command, trained_run, tmp_path, capsys, no_cuda
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    args = {"predict": [run, tmp_path / "rows.csv", "--out", tmp_path / "p.csv"], "evaluate": [run], "serve": [run]}
    (tmp_path / "rows.csv").write_text("price\n1.0\n")
    capsys.readouterr()
    code = main([command, *map(str, args[command]), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --device: 'cuda', but CUDA is not available"), err
