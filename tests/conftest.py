"""Shared fixtures: a small simulated shop table, a tiny experiment config and one tiny trained run
per test session (per xdist worker)."""

from __future__ import annotations

import copy
import math
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
