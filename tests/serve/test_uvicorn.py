"""A real uvicorn server on a free loopback port, called over HTTP with httpx, then shut down; and
the `mtlrec serve` command's options."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from mtlrec.cli.main import main
from mtlrec.serve.app import create_app


@pytest.fixture
def server(predictor):
    """(base url) of a uvicorn server running the app in a thread; stopped after the test."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held from now on: no race with other processes
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(predictor), log_level="warning", access_log=False)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    assert not thread.is_alive()


def test_endpoints_over_http(server, raw_rows):
    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/v1/health").json()["status"] == "ok"
        assert http.get("/v1/model").json()["model"] == "shared_bottom"
        scored = http.post("/v1/score", json={"rows": raw_rows[:5]})
        assert scored.status_code == 200 and len(scored.json()["predictions"]["click"]) == 5
        candidates = [{"id": i, **r} for i, r in enumerate(raw_rows[:20])]
        ranked = http.post("/v1/recommend", json={"candidates": candidates, "k": 4})
        assert ranked.status_code == 200
        fused = ranked.json()["lists"]["fused"]
        assert len(fused) == 4 and [x["score"] for x in fused] == sorted((x["score"] for x in fused), reverse=True)
        bad = http.post("/v1/recommend", json={"candidates": candidates, "k": 0})
        assert bad.status_code == 422 and bad.json()["message"].startswith("k: ")
        assert http.get("/docs").status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_passes_its_options(monkeypatch, trained_run, capsys):
    import mtlrec.serve.server

    seen = {}
    monkeypatch.setattr(mtlrec.serve.server, "serve", lambda app, sock, **kw: seen.update(app=app, sock=sock, **kw))
    port = free_port()
    argv = ["serve", str(trained_run), "--port", str(port), "--max-candidates", "50", "--threads", "3",
            "--shutdown-timeout", "7"]  # fmt: skip
    assert main(argv) == 0
    sock = seen["sock"]
    assert sock.getsockname() == ("127.0.0.1", port) and sock.proto == socket.IPPROTO_TCP
    sock.close()
    assert seen["shutdown_timeout"] == 7 and seen["log_level"] == "info"
    service = seen["app"].state.serving.service
    assert service.limits.max_candidates == 50 and service.backend.name == "torch"
    assert seen["app"].state.serving.runs_root == trained_run.parent.resolve()
    assert f"http://127.0.0.1:{port}/docs" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--max-candidates", "--max-body-bytes", "--threads", "--workers"])
def test_serve_command_refuses_a_limit_below_one(trained_run, capsys, option):
    assert main(["serve", str(trained_run), option, "0"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {option}")


def test_serve_command_names_a_missing_run(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
