"""Graceful shutdown: SIGTERM stops accepting, finishes the requests in flight (bounded by the
shutdown timeout) and `mtlrec serve` exits 0; with --workers 2 as well, after a reload that every
worker follows. The subprocesses started here are ended by their pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from mtlrec.serve.app import Options, create_app

TOKEN = "shutdown-token-0123456789"
CLI = "from mtlrec.cli.main import entry; entry()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_the_request_in_flight(predictor, live, slow, raw_rows):
    app = create_app(predictor, options=Options(threads=1))
    slow(app, seconds=1.0)
    url, server, thread = live(app, shutdown_timeout=10)
    result = {}

    def send() -> None:
        result["got"] = httpx.post(url + "/v1/score", json={"rows": raw_rows[:2]}, timeout=30)

    request = threading.Thread(target=send)
    request.start()
    time.sleep(0.3)
    server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
    assert app.state.serving.stopping
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(url + "/v1/health", timeout=2)
    request.join(timeout=10)
    assert result["got"].status_code == 200
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_the_shutdown_timeout_bounds_the_wait(predictor, live, slow, raw_rows):
    app = create_app(predictor, options=Options(threads=1))
    slow(app, seconds=5.0)
    url, server, thread = live(app, shutdown_timeout=0.5)
    request = threading.Thread(target=lambda: httpx.post(url + "/v1/score", json={"rows": raw_rows[:1]}, timeout=30),
                               daemon=True)  # fmt: skip
    request.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    thread.join(timeout=10)
    assert not thread.is_alive() and time.monotonic() - t0 < 3


def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", CLI, "serve", *args, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/v1/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            out, err = process.communicate(timeout=10)
            pytest.fail(f"mtlrec serve did not start: {err[-2000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM to the process started here (by its pid), then its exit status and stderr."""
    os.kill(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("mtlrec serve did not exit within 60 s of SIGTERM")
    return process.returncode, err


def test_mtlrec_serve_exits_0_on_sigterm(trained_run, raw_rows):
    process, url = start(str(trained_run), "--threads", "2")
    answers = []

    def send() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for _ in range(200):
                try:
                    answers.append(http.post("/v1/score", json={"rows": raw_rows[:20]}).status_code)
                except httpx.TransportError:
                    return  # the server closed: the request was not taken
            return

    clients = [threading.Thread(target=send) for _ in range(3)]
    for t in clients:
        t.start()
    time.sleep(0.5)
    code, err = stop(process)
    for t in clients:
        t.join(timeout=30)
    assert code == 0, err
    assert "SIGTERM: finishing the requests in flight" in err and "Traceback" not in err
    assert answers and set(answers) == {200}  # every request taken was answered


def test_workers_all_follow_a_reload_and_exit_0(tmp_path, trained_run, second_run):
    root = tmp_path / "runs"
    shutil.copytree(trained_run, root / "day1", ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(second_run, root / "day2", ignore=shutil.ignore_patterns("checkpoints"))
    day2 = json.loads((root / "day2" / "run.json").read_text())["id"]
    process, url = start(str(root / "day1"), "--workers", "2", "--threads", "1", "--watch-interval", "0.2",
                         env={"MTLREC_ADMIN_TOKEN": TOKEN})  # fmt: skip
    try:
        got = httpx.post(url + "/v1/admin/reload", json={"run": "day2"}, timeout=60,
                         headers={"authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert got.status_code == 200, got.text
        deadline = time.monotonic() + 30  # the other worker follows within the watch interval (and its load)
        while True:
            seen = set()
            for _ in range(30):  # new connections: the kernel spreads them over both workers
                with httpx.Client(timeout=10) as http:
                    seen.add(http.get(url + "/v1/ready").json()["run"]["id"])
            if seen == {day2} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert seen == {day2}
    finally:
        code, err = stop(process)
    assert code == 0, err
    assert err.count("SIGTERM: finishing the requests in flight") == 2, err
