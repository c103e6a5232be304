"""Hot reload: POST /v1/admin/reload (token, runs root, what a failed reload leaves), a watched
symlink or directory, and a reload under concurrent requests that fails none and mixes none."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from mtlrec.serve.app import Options, create_app
from mtlrec.serve.predictor import Predictor
from mtlrec.serve.reload import point, request_difference
from mtlrec.serve.service import Service

TOKEN = "reload-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CONTEXT = ("device", "hour", "user_price_pref", "user_activity", "user_cat_clicks", "recent_categories")


@pytest.fixture
def root(tmp_path, trained_run, second_run):
    """A runs root holding day1 (the trained run) and day2 (another run of the same schema)."""
    root = tmp_path / "runs"
    shutil.copytree(trained_run, root / "day1", ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(second_run, root / "day2", ignore=shutil.ignore_patterns("checkpoints"))
    return root


def run_id(run) -> str:
    return json.loads((run / "run.json").read_text())["id"]


def serving(client) -> dict:
    return client.get("/v1/model").json()["serving"]


def reload(client, run, headers=AUTH):
    return client.post("/v1/admin/reload", json={"run": str(run)}, headers=headers)


@pytest.fixture
def client(root, client_for):
    return client_for(create_app(root / "day1", options=Options(admin_token=TOKEN, runs_root=root)))


def test_reload_serves_the_new_run_and_model_names_it(client, root, raw_rows):
    assert serving(client)["id"] == run_id(root / "day1") and serving(client)["reloads"] == 0
    got = reload(client, "day2")
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["run"] == {"path": str(root / "day2"), "id": run_id(root / "day2")}
    assert answer["previous"]["id"] == run_id(root / "day1")
    now = serving(client)
    assert now["id"] == run_id(root / "day2") and now["reloads"] == 1 and now["last_reload_error"] is None
    assert client.get("/v1/model").json()["version"]["run"]["id"] == run_id(root / "day2")
    scored = client.post("/v1/score", json={"rows": raw_rows[:5]}).json()["predictions"]["click"]
    want = Predictor.load(root / "day2").score({c: [r[c] for r in raw_rows[:5]] for c in raw_rows[0]}, 5)["click"]
    np.testing.assert_allclose(scored, want, rtol=1e-6)
    assert reload(client, root / "day1").status_code == 200  # an absolute path under the root
    assert serving(client)["id"] == run_id(root / "day1")


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong-token-0123456789"},
                                     {"authorization": f"Basic {TOKEN}"}, {"authorization": TOKEN}])  # fmt: skip
def test_reload_needs_the_token(client, root, headers):
    got = reload(client, "day2", headers)
    assert got.status_code == 401 and got.headers["www-authenticate"] == "Bearer"
    assert got.json()["message"] == "expected the header Authorization: Bearer <admin token>"
    assert serving(client)["id"] == run_id(root / "day1")


def test_admin_endpoints_are_off_without_a_token(root, client_for):
    client = client_for(create_app(root / "day1", options=Options(runs_root=root)))
    got = reload(client, "day2", {"authorization": "Bearer "})
    assert got.status_code == 403 and "admin endpoints are off" in got.json()["message"]


def test_runs_outside_the_root_are_refused(client, root, tmp_path, trained_run):
    shutil.copytree(trained_run, tmp_path / "elsewhere", ignore=shutil.ignore_patterns("checkpoints"))
    (root / "link").symlink_to(tmp_path / "elsewhere")  # inside the root, pointing outside it
    for run in ("../elsewhere", str(tmp_path / "elsewhere"), "link", "day1/../../elsewhere"):
        got = reload(client, run)
        assert got.status_code == 403 and "not under the runs root" in got.json()["message"], run
    assert serving(client)["id"] == run_id(root / "day1")


@pytest.mark.parametrize("body, message", [
    (b'{"run": 3}', "run: Input should be a valid string"),
    (b'{"path": "day2"}', "run: Field required (and 1 more)"),
    (b'{"run": "day2"', "body: could not be read as JSON"),
    (b'["day2"]', "body: Input should be a valid dictionary"),
    (b'{"run": "day\\u0000"}', "not a usable path"),
])  # fmt: skip
def test_a_reload_body_that_is_not_a_run_name(client, body, message):
    got = client.post("/v1/admin/reload", content=body, headers={**AUTH, "content-type": "application/json"})
    assert got.status_code == 422 and message in got.json()["message"], got.text


def _damage(root, how):
    run = root / "bad"
    shutil.copytree(root / "day2", run)
    if how == "missing":
        shutil.rmtree(run)
    elif how == "incomplete":
        (run / "run.json").unlink()
    elif how == "weights":
        (run / "model.safetensors").write_bytes(b"\x00\xff not safetensors" * 10)
    elif how == "truncated":
        data = (run / "model.safetensors").read_bytes()
        (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "encoder":
        (run / "encoder.json").write_text("{not json")
    elif how == "config":
        (run / "config.yaml").write_text("model: [unclosed\n")
    elif how == "future":
        (run / "run.json").write_text(json.dumps({**json.loads((run / "run.json").read_text()), "format": 99}))
    return run


@pytest.mark.parametrize("how, message", [
    ("missing", "not a run directory"),
    ("incomplete", "not a complete run directory"),
    ("weights", "model.safetensors: not a valid safetensors file"),
    ("truncated", "model.safetensors"),
    ("encoder", "encoder.json"),
    ("config", "config.yaml"),
    ("future", "unsupported run format"),
])  # fmt: skip
def test_a_failed_reload_keeps_the_old_run_and_says_why(client, root, raw_rows, how, message):
    _damage(root, how)
    got = reload(client, "bad")
    assert got.status_code == 422, got.text
    assert message in got.json()["message"] and got.json()["message"].endswith(f"still serving {root / 'day1'}")
    now = serving(client)
    assert now["id"] == run_id(root / "day1") and message in now["last_reload_error"]["error"]
    assert client.post("/v1/score", json={"rows": raw_rows[:2]}).status_code == 200


def test_a_run_of_another_schema_is_refused_naming_the_difference(client, root, other_schema_run):
    shutil.copytree(other_schema_run, root / "other", ignore=shutil.ignore_patterns("checkpoints"))
    got = reload(client, "other")
    assert got.status_code == 422
    message = got.json()["message"]
    assert "not the request schema of the serving run: the request fields differ" in message
    assert "adds 'user_id'" in message and "lacks 'category'" in message
    assert serving(client)["id"] == run_id(root / "day1")


def test_request_difference_names_a_changed_output(predictor, other_schema_run):
    same = Service(predictor)
    assert request_difference(same, Service(predictor), "x") is None
    other = Service(Predictor.load(other_schema_run))
    assert request_difference(other, same, "day2").startswith("the request fields differ: day2 adds 'category'")


def test_a_second_reload_while_one_runs_is_a_409(client):
    lock = client.app.state.serving._lock
    with lock:
        got = reload(client, "day2")
    assert got.status_code == 409 and "another reload is running" in got.json()["message"]


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_watched_symlink_is_followed(root, client_for):
    current = root / "current"
    current.symlink_to(root / "day1")
    app = create_app(current, options=Options(watch=current, watch_interval=0.05))
    with client_for(app) as client:  # the lifespan starts the watcher
        time.sleep(0.2)
        assert serving(client)["reloads"] == 0  # the run it was started with: nothing to do
        point(current, root / "day2")
        wait_for(lambda: serving(client)["id"] == run_id(root / "day2"))
        point(current, _damage(root, "weights"))
        wait_for(lambda: serving(client)["last_reload_error"] is not None)
        assert serving(client)["id"] == run_id(root / "day2") and serving(client)["reloads"] == 1
        assert "model.safetensors" in serving(client)["last_reload_error"]["error"]
        time.sleep(0.2)
        assert serving(client)["reloads"] == 1  # a failed run is not tried again until the path changes
        point(current, root / "day1")
        wait_for(lambda: serving(client)["id"] == run_id(root / "day1"))
        assert serving(client)["last_reload_error"] is None


def test_a_watched_directory_rewritten_in_place_is_reloaded(root, client_for):
    run = root / "day1"
    app = create_app(run, options=Options(watch=run, watch_interval=0.05))
    with client_for(app) as client:
        info = json.loads((run / "run.json").read_text())
        (run / "run.json").unlink()  # a run rewriting the directory: not complete, not loaded
        time.sleep(0.2)
        assert serving(client)["reloads"] == 0 and serving(client)["last_reload_error"] is None
        for name in ("model.safetensors", "encoder.json", "config.yaml"):
            shutil.copy(root / "day2" / name, run / name)
        (run / "run.json").write_text(json.dumps({**info, "id": "rewritten"}))  # written last
        wait_for(lambda: serving(client)["id"] == "rewritten")
        assert serving(client)["reloads"] == 1


def recommend_body(rows):
    context = {c: rows[0][c] for c in CONTEXT}
    candidates = [{"id": i, **{c: v for c, v in r.items() if c not in CONTEXT}} for i, r in enumerate(rows)]
    return {"context": context, "candidates": candidates, "k": 5}


def test_reload_under_concurrent_requests_fails_none_and_mixes_none(root, live, raw_rows):
    """Four clients send the same request while the service switches between two runs eight times:
    every answer is a 200 equal to one run's answer (never a mix of the two), and both runs answer."""
    body = recommend_body(raw_rows[:40])
    expected = {}
    for day in ("day1", "day2"):
        lists = Service(Predictor.load(root / day)).recommend(body)["lists"]
        expected[day] = {name: [x["id"] for x in items] for name, items in lists.items()}
    assert expected["day1"] != expected["day2"]
    url, _, _ = live(create_app(root / "day1", options=Options(admin_token=TOKEN, runs_root=root, threads=2)))
    answers, failures, stop = {"day1": 0, "day2": 0}, [], threading.Event()

    def send() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                got = http.post("/v1/recommend", json=body)
                if got.status_code != 200:
                    failures.append(got.text)
                    continue
                ranked = {name: [x["id"] for x in items] for name, items in got.json()["lists"].items()}
                match = [day for day, want in expected.items() if ranked == want]
                if len(match) == 1:
                    answers[match[0]] += 1
                else:
                    failures.append(f"an answer of neither run: {ranked}")

    clients = [threading.Thread(target=send) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        with httpx.Client(base_url=url, timeout=60, headers=AUTH) as admin:
            for i in range(8):
                time.sleep(0.15)
                got = admin.post("/v1/admin/reload", json={"run": ("day2", "day1")[i % 2]})
                assert got.status_code == 200, got.text
            assert admin.get("/v1/model").json()["serving"]["reloads"] == 8
    finally:
        time.sleep(0.15)
        stop.set()
        for t in clients:
            t.join(timeout=30)
    assert failures == []
    assert answers["day1"] > 0 and answers["day2"] > 0, answers
