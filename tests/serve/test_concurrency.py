"""Concurrency and the defaults safe to expose: the model runs off the event loop (health and other
requests do not wait behind a slow one; two requests run at once), the request timeout, 500s with a
request id and no traceback, the ONNX backend, and `mtlrec serve`'s socket."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from mtlrec.serve.app import Options, create_app
from mtlrec.serve.service import Service

CONTEXT = ("device", "hour", "user_price_pref", "user_activity", "user_cat_clicks", "recent_categories")


def in_thread(fn, *args):
    """Start ``fn(*args)`` in a thread; returns a function that joins it and gives its result."""
    out = {}
    thread = threading.Thread(target=lambda: out.update(value=fn(*args)))
    thread.start()

    def result():
        thread.join(timeout=30)
        return out["value"]

    return result


def post(url, path, body):
    return httpx.post(url + path, json=body, timeout=30)


def test_health_does_not_wait_behind_a_slow_request(predictor, live, slow, raw_rows):
    app = create_app(predictor, options=Options(threads=1))
    slow(app, seconds=1.5)
    url, _, _ = live(app)
    pending = in_thread(post, url, "/v1/score", {"rows": raw_rows[:3]})
    time.sleep(0.3)  # the score request is in the model now
    t0 = time.perf_counter()
    assert httpx.get(url + "/v1/health", timeout=5).status_code == 200
    assert httpx.get(url + "/v1/model", timeout=5).status_code == 200
    assert time.perf_counter() - t0 < 1.0  # the score request still has half a second to go
    assert pending().status_code == 200


def test_threads_score_requests_side_by_side(predictor, live, slow, raw_rows):
    app = create_app(predictor, options=Options(threads=3))
    slow(app, seconds=0.6)
    url, _, _ = live(app)
    t0 = time.perf_counter()
    pending = [in_thread(post, url, "/v1/score", {"rows": raw_rows[i : i + 2]}) for i in range(3)]
    assert [p().status_code for p in pending] == [200, 200, 200]
    assert time.perf_counter() - t0 < 1.5  # one after another would take 1.8 s


def test_an_answer_past_the_request_timeout_is_a_503(predictor, client_for, slow, raw_rows):
    app = create_app(predictor, options=Options(request_timeout=0.2))
    slow(app, seconds=0.8)
    got = client_for(app).post("/v1/score", json={"rows": raw_rows[:1]})
    assert got.status_code == 503
    assert got.json()["message"] == "no answer within the request timeout (0.2 s): the service is busy"


def test_a_body_that_does_not_arrive_in_time_is_a_408(predictor, live):
    url, _, _ = live(create_app(predictor, options=Options(request_timeout=0.3)))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 100\r\n\r\n{\"rows\": [")  # fmt: skip
        answer = _read_answer(s)
    assert answer.startswith("HTTP/1.1 408") and "the request body did not arrive within 0.3 s" in answer


def _read_answer(s: socket.socket) -> str:
    """The whole HTTP answer: its head and content-length bytes of body, which may come in several
    packets (a loaded machine sends the head and the body apart)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode()
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_a_bug_is_a_500_with_a_request_id_and_no_traceback(predictor, client_for, slow, raw_rows, caplog):
    app = create_app(predictor)
    slow(app, seconds=0, error=RuntimeError("secret internals"))
    with caplog.at_level(logging.ERROR, logger="mtlrec.serve"):
        got = client_for(app).post("/v1/score", json={"rows": raw_rows[:1]})
    assert got.status_code == 500
    answer = got.json()
    request_id = answer["request_id"]
    assert got.headers["x-request-id"] == request_id and len(request_id) == 16
    assert answer["message"] == f"internal error (request id {request_id}; the service's log has the details)"
    assert "secret internals" not in got.text and "Traceback" not in got.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None and "secret internals" in str(logged[0].exc_info[1])


def test_every_answer_has_a_request_id(predictor, client_for):
    client = client_for(create_app(predictor))
    ids = {client.get("/v1/health").headers["x-request-id"] for _ in range(3)}
    ids.add(client.post("/v1/score", json={}).headers["x-request-id"])  # a 422 too
    assert len(ids) == 4


def test_readiness_is_apart_from_liveness(predictor, client_for):
    app = create_app(predictor)
    client = client_for(app)
    assert client.get("/v1/ready").json()["status"] == "ready"
    app.state.serving.stopping = True  # what SIGTERM does first
    got = client.get("/v1/ready")
    assert got.status_code == 503 and got.json()["status"] == "stopping"
    assert client.get("/v1/health").status_code == 200


def test_the_onnx_backend_answers_as_torch_does(predictor, raw_rows):
    pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    torch_service, onnx_service = Service(predictor), Service(predictor, backend="onnx")
    assert onnx_service.backend.name == "onnx" and onnx_service.backend.max_difference() < 1e-5
    columns = {c: [r[c] for r in raw_rows[:50]] for c in raw_rows[0]}
    want, got = torch_service.predict(columns, 50), onnx_service.predict(columns, 50)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    context = {c: raw_rows[0][c] for c in CONTEXT}
    candidates = [{"id": i, **{c: v for c, v in r.items() if c not in context}} for i, r in enumerate(raw_rows[:30])]
    body = {"context": context, "candidates": candidates, "k": 5}
    ids = [[x["id"] for x in items] for items in onnx_service.recommend(body)["lists"].values()]
    assert ids == [[x["id"] for x in items] for items in torch_service.recommend(body)["lists"].values()]


def test_the_onnx_export_has_no_loop_over_rows(predictor):
    """The exporter turns an EmbeddingBag into a loop over its bags (~20x slower in onnxruntime on
    500 rows); the export's MeanBag is a lookup and a masked mean, equal to it."""
    pytest.importorskip("onnxscript", reason="the export extra (onnxscript) is not installed")
    from mtlrec.export import Scorer, onnx_program

    proto = onnx_program(Scorer(predictor.model, predictor.encoder.targets_)).model_proto
    assert not {n.op_type for n in proto.graph.node} & {"Loop", "Scan"}


def test_mtlrec_serve_binds_a_tcp_socket_without_nagle(monkeypatch):
    """asyncio turns Nagle's algorithm off only on sockets that say they are TCP: with it on, a
    keep-alive client waited ~40 ms for every answer."""
    from mtlrec.serve.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
