"""Fixtures of the service tests: the session's tiny trained run, loaded once, and raw rows of
the simulated shop that it has not been trained on."""

from __future__ import annotations

import warnings

import pytest

from mtlrec.data.synthetic import simulate


@pytest.fixture(scope="session")
def predictor(trained_run):
    from mtlrec.serve.predictor import Predictor

    return Predictor.load(trained_run)


@pytest.fixture(scope="session")
def fresh_table():
    """200 impressions from another seed of the same simulated shop (held-out rows)."""
    return simulate(rows=200, users=40, items=300, seed=11)


@pytest.fixture(scope="session")
def raw_rows(predictor, fresh_table):
    """The held-out rows as JSON-ready dicts of the run's feature columns."""
    return fresh_table.select(predictor.encoder.schema.columns(labels=False)).to_pylist()


@pytest.fixture(scope="session")
def client_for():
    """client_for(app) -> a FastAPI TestClient (imported here: it warns that starlette prefers httpx2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient
