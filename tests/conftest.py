"""Shared fixtures: a small simulated shop table, a tiny experiment config and one tiny trained run
per test session (per xdist worker)."""

from __future__ import annotations

import copy
import math
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import torch

# CI runs `pytest -n 2` on two cores: one torch thread per worker avoids oversubscription.
torch.set_num_threads(1)

import pytest  # noqa: E402

from mtlrec.data.synthetic import simulate  # noqa: E402

SIMULATION = {"rows": 6000, "users": 500, "items": 300, "seed": 1}
TINY_CONFIG: dict[str, Any] = {
    "data": {"source": "synthetic", "synthetic": dict(SIMULATION)},
    "model": {
        "name": "shared_bottom",
        "embedding_dim": 8,
        "tower_dims": [16],
        "shared_bottom": {"bottom_dims": [32]},
    },
    "train": {"epochs": 2, "batch_size": 512, "progress": False, "seed": 0},
}


@pytest.fixture(scope="session")
def shop_table():
    """6000 simulated impressions (500 users, 300 items) with every task kind and oracle columns."""
    return simulate(**SIMULATION)


@pytest.fixture
def tiny_config() -> dict[str, Any]:
    """A fresh copy of a config dict that trains in about a second; edit it freely."""
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_config_shared() -> dict[str, Any]:
    """TINY_CONFIG for module- and session-scoped fixtures: one copy per session, so copy it
    before editing."""
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run directory trained once per session on TINY_CONFIG. Tests must not modify it (copy it)."""
    from mtlrec.config import ExperimentConfig
    from mtlrec.experiment import run_experiment

    out = tmp_path_factory.mktemp("trained") / "run"
    run_experiment(ExperimentConfig.model_validate(copy.deepcopy(TINY_CONFIG)), out)
    return out


def assert_metrics_close(got: dict, want: dict, tol: float = 1e-6) -> None:
    """Nested {task: {metric: value}} equal to ``tol``; NaN (or JSON null) matches NaN or null."""
    assert set(got) == set(want)
    for key in want:
        g, w = got[key], want[key]
        if isinstance(w, dict):
            assert isinstance(g, dict), key
            assert_metrics_close(g, w, tol)
            continue
        g_nan = g is None or (isinstance(g, float) and math.isnan(g))
        w_nan = w is None or (isinstance(w, float) and math.isnan(w))
        assert g_nan == w_nan, f"{key}: {g} vs {w}"
        if not w_nan:
            assert g == pytest.approx(w, abs=tol, rel=tol), key


@pytest.fixture(scope="session")
def metrics_close():
    """The NaN-aware nested comparison, as a fixture (test modules are imported by path)."""
    return assert_metrics_close


# the child trains and kills itself with SIGKILL at a chosen point: after train step N ("step"),
# right after checkpoint number N is written ("saved"), or inside the N-th save, after its files
# are written and before the rename that completes it ("writing")
KILLING_CHILD = r"""
import json, os, signal, sys
import torch
torch.set_num_threads(1)
from mtlrec.config import ExperimentConfig
from mtlrec import experiment
from mtlrec.train import checkpoints, trainer
raw, out, where, n = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
count = {"steps": 0, "saves": 0}
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if where == "step":
    step = trainer.Trainer.train_step
    def train_step(self, batch):
        result = step(self, batch)
        count["steps"] += 1
        if count["steps"] == n:
            die()
        return result
    trainer.Trainer.train_step = train_step
else:
    save_file = __import__("safetensors.torch", fromlist=["save_file"]).save_file
    save = checkpoints.save_checkpoint
    def patched(*args, **kwargs):
        count["saves"] += 1
        if where == "writing" and count["saves"] == n:
            import safetensors.torch as st
            def write_then_die(tensors, path):
                save_file(tensors, path)
                die()
            st.save_file = write_then_die
        result = save(*args, **kwargs)
        if where == "saved" and count["saves"] == n:
            die()
        return result
    experiment.save_checkpoint = patched
experiment.run_experiment(ExperimentConfig.model_validate(raw), out)
"""


@pytest.fixture(scope="session")
def killing_child() -> str:
    """The script of a child that trains ``argv[1]`` (a config as JSON) into ``argv[2]`` and kills
    itself with SIGKILL at ``argv[3]`` ("step", "saved", "writing") number ``argv[4]``."""
    return KILLING_CHILD


@pytest.fixture(scope="session")
def kill_child(killing_child):
    """Run ``killing_child`` to its SIGKILL (bounded to two minutes)."""
    import json
    import signal
    import subprocess
    import sys

    def run(raw: dict, out, where: str, n: int) -> None:
        child = subprocess.run([sys.executable, "-c", killing_child, json.dumps(raw), str(out), where, str(n)],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    return run


# -- several processes under torchrun (tests/train/test_distributed.py, tests/test_cuda.py) ----------
LOOPBACK = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}  # gloo's connections on 127.0.0.1, not the host's address
TORCHRUN_TIMEOUT = 180  # seconds for one launch (about 5-10 s on two idle cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torchrun(
    args: list[str], *, env: dict[str, str] | None = None, processes: int = 2
) -> subprocess.CompletedProcess:
    """``args`` under torchrun, ``processes`` on this machine. If it outlives TORCHRUN_TIMEOUT,
    torchrun and its workers (in sessions of their own, marked by an environment variable of this
    call) are killed by pid."""
    mark = f"{os.getpid()}-{uuid.uuid4().hex}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**LOOPBACK, **(env or {}), "MTLREC_TEST_RUN": mark})  # fmt: skip
    try:
        out, err = proc.communicate(timeout=TORCHRUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        for pid in marked(mark):
            os.kill(pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def marked(mark: str) -> list[int]:
    """The live processes whose environment has MTLREC_TEST_RUN=``mark`` (started by one call)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"MTLREC_TEST_RUN={mark}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


@pytest.fixture(scope="session")
def torchrun():
    """run_torchrun, for test modules (imported by path)."""
    return run_torchrun
