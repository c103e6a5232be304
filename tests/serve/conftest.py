"""Fixtures of the service tests: the session's tiny trained run, loaded once, and raw rows of
the simulated shop that it has not been trained on."""

from __future__ import annotations

import socket
import threading
import time
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


def _train(tmp_path_factory, tiny_config, name, **changes):
    import copy

    from mtlrec.config import ExperimentConfig
    from mtlrec.experiment import run_experiment

    config = copy.deepcopy(tiny_config)
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values}
    out = tmp_path_factory.mktemp(name) / "run"
    run_experiment(ExperimentConfig.model_validate(config), out)
    return out


@pytest.fixture(scope="session")
def second_run(tmp_path_factory, tiny_config_shared):
    """The trained run's config with another seed: the same request schema, other predictions."""
    return _train(tmp_path_factory, tiny_config_shared, "second", train={"seed": 1, "epochs": 1})


@pytest.fixture(scope="session")
def other_schema_run(tmp_path_factory, tiny_config_shared):
    """A run of another request schema: two features (user_id, price) and two tasks."""
    schema = {
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "price", "kind": "numeric"}],
        "tasks": [{"name": "click", "kind": "binary"}, {"name": "purchase", "kind": "binary", "where": "click"}],
    }
    return _train(tmp_path_factory, tiny_config_shared, "other", schema=schema, train={"epochs": 1})


@pytest.fixture
def live():
    """live(app, shutdown_timeout=5.0) -> (base url, uvicorn server, its thread): the app served by
    uvicorn in a thread on a free loopback port (a socket this test holds: no race with others);
    stopped after the test."""
    from mtlrec.serve.server import make_server

    running = []

    def start(app, shutdown_timeout: float = 5.0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        server = make_server(app, log_level="warning", shutdown_timeout=shutdown_timeout)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive()


class Slow:
    """A backend that waits ``seconds`` before answering (or raises ``error``): requests that stay
    in flight long enough to test what happens meanwhile."""

    def __init__(self, backend, seconds: float = 0.0, error: Exception | None = None) -> None:
        self.backend, self.seconds, self.error = backend, seconds, error
        self.name = backend.name

    def __call__(self, batch):
        time.sleep(self.seconds)
        if self.error is not None:
            raise self.error
        return self.backend(batch)


@pytest.fixture(scope="session")
def slow():
    """slow(app, seconds=1.0, error=None): make the app's model slow (or failing)."""

    def make(app, seconds: float = 1.0, error: Exception | None = None) -> None:
        service = app.state.serving.service
        service.backend = Slow(service.backend, seconds, error)

    return make
