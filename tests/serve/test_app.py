"""Every endpoint through FastAPI's test client: answers checked against the Predictor and the
fusion, and bad payloads each answered with the right status and an error naming the field."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.errors import RunError
from mtlrec.rank.fusion import build_fuser
from mtlrec.serve.app import create_app
from mtlrec.serve.predictor import Predictor
from mtlrec.serve.schemas import Limits

CONTEXT = ("device", "hour", "user_price_pref", "user_activity", "user_cat_clicks", "recent_categories")
LIMITS = Limits(max_rows=8, max_candidates=8, max_body_bytes=20_000)


@pytest.fixture(scope="module")
def client(predictor, client_for):
    return client_for(create_app(predictor, LIMITS))


def recommend_body(rows, k=3):
    """The rows as one request: the user/context columns of the first row, the rest per candidate."""
    context = {c: rows[0][c] for c in CONTEXT}
    candidates = [{"id": f"item-{i}", **{c: v for c, v in r.items() if c not in CONTEXT}} for i, r in enumerate(rows)]
    return {"context": context, "candidates": candidates, "k": k}


def test_health(client):
    got = client.get("/v1/health")
    assert got.status_code == 200
    assert got.json()["status"] == "ok" and got.json()["model"] == "shared_bottom"


def test_model_describes_tasks_features_and_fusion(client, predictor):
    info = client.get("/v1/model").json()
    assert info["model"] == "shared_bottom" and info["version"]["run"]["model"] == "shared_bottom"
    assert [t["name"] for t in info["tasks"]] == [t.name for t in predictor.tasks]
    assert {t["name"]: t["output"] for t in info["tasks"]}["order_value"] == "value"
    kinds = {f["column"]: f["kind"] for f in info["features"]}
    assert kinds["brand"] == "categorical" and kinds["price"] == "numeric" and kinds["recent_categories"] == "sequence"
    assert info["fusion"]["formula"] == "click^1"
    assert info["lists"] == ["click", "add_to_cart", "purchase", "order_value", "fused"]
    assert info["limits"]["max_candidates"] == 8


def test_docs_and_openapi_show_the_generated_request_models(client, predictor):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/recommend", "/v1/model", "/v1/health"} <= set(spec["paths"])
    row = spec["components"]["schemas"]["Row"]
    features = predictor.encoder.schema.columns(labels=False)
    assert sorted(row["required"]) == sorted(features) and len(features) == 11
    assert row["additionalProperties"] is False


@pytest.mark.parametrize("endpoint, model", [("score", "ScoreRequest"), ("recommend", "RecommendRequest")])
def test_the_documented_examples_are_valid_requests(client, endpoint, model):
    example = client.get("/openapi.json").json()["components"]["schemas"][model]["examples"][0]
    assert client.post(f"/v1/{endpoint}", json=example).status_code == 200


def test_score_equals_the_predictor(client, predictor, raw_rows, fresh_table):
    got = client.post("/v1/score", json={"rows": raw_rows[:8]})
    assert got.status_code == 200
    body = got.json()
    want = predictor.predict(fresh_table.slice(0, 8))
    for name, values in want.items():
        np.testing.assert_allclose(np.array(body["predictions"][name]), values, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(body["fused"], want["click"], rtol=1e-6)  # the default fusion: pCTR


def test_score_with_missing_and_unseen_values_equals_the_table_path(client, predictor, raw_rows):
    rows = [dict(r) for r in raw_rows[:3]]
    rows[0].update(brand=None, price=None, recent_categories=None)
    rows[1].update(category=123456, device="smart-fridge", recent_categories=[])
    got = client.post("/v1/score", json={"rows": rows}).json()["predictions"]
    want = predictor.predict(pa.Table.from_pylist(rows))
    for name, values in want.items():
        np.testing.assert_allclose(np.array(got[name]), values, rtol=1e-6, err_msg=name)


def test_recommend_ranks_candidates_by_each_task_and_the_fusion(client, predictor, raw_rows):
    rows = [{**r, **{c: raw_rows[0][c] for c in CONTEXT}} for r in raw_rows[:8]]  # one user's page
    got = client.post("/v1/recommend", json=recommend_body(rows, k=3))
    assert got.status_code == 200
    lists = got.json()["lists"]
    assert list(lists) == ["click", "add_to_cart", "purchase", "order_value", "fused"]
    preds = predictor.predict(pa.Table.from_pylist(rows))
    for name, ranked in lists.items():
        want = preds["click" if name == "fused" else name]
        order = np.argsort(-want, kind="stable")[:3]
        assert [item["id"] for item in ranked] == [f"item-{i}" for i in order], name
        np.testing.assert_allclose([item["score"] for item in ranked], want[order], rtol=1e-6)
    assert got.json()["fusion"] == "click^1"


def test_recommend_context_equals_per_candidate_values(client, raw_rows):
    body = recommend_body(raw_rows[:5], k=5)
    flat = {"candidates": [{**c, **body["context"]} for c in body["candidates"]], "k": 5}
    a, b = client.post("/v1/recommend", json=body).json(), client.post("/v1/recommend", json=flat).json()
    assert a == b


def test_recommend_k_larger_than_the_candidates_returns_all(client, raw_rows):
    got = client.post("/v1/recommend", json=recommend_body(raw_rows[:2], k=50)).json()
    assert all(len(items) == 2 for items in got["lists"].values())


def test_integer_ids_come_back_as_given(client, raw_rows):
    body = recommend_body(raw_rows[:3])
    for i, c in enumerate(body["candidates"]):
        c["id"] = 100 + i
    got = client.post("/v1/recommend", json=body).json()
    assert sorted(item["id"] for item in got["lists"]["fused"]) == [100, 101, 102]


def test_a_fusion_column_that_is_not_a_feature_becomes_a_request_field(predictor, client_for, raw_rows):
    fuser = build_fuser({"name": "weighted_sum", "weighted_sum": {"weights": {"click": 1.0, "margin": 0.5}}})
    own = Predictor(predictor.config, predictor.encoder, predictor.model, fuser=fuser)
    client = client_for(create_app(own, LIMITS))
    rows = [{**r, "margin": float(i)} for i, r in enumerate(raw_rows[:4])]
    got = client.post("/v1/score", json={"rows": rows}).json()
    np.testing.assert_allclose(got["fused"], np.array(got["predictions"]["click"]) + 0.5 * np.arange(4), rtol=1e-9)
    missing = client.post("/v1/score", json={"rows": raw_rows[:1]})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "rows", 0, "margin"]
    body = recommend_body(rows, k=4)
    body["candidates"][2]["margin"] = 10.0
    fused = client.post("/v1/recommend", json=body).json()["lists"]["fused"]
    assert fused[0]["id"] == "item-2"


@pytest.mark.parametrize("weights, message", [
    ({"click": 1.0, "user_segment": 1.0}, "fusion input 'user_segment' has one value per class"),
    ({"click": 1.0, "brand": 1.0}, "fusion input 'brand' is a categorical feature"),
])  # fmt: skip
def test_a_fusion_the_service_cannot_compute_is_refused_at_start(predictor, weights, message):
    fuser = build_fuser({"name": "weighted_sum", "weighted_sum": {"weights": weights}})
    with pytest.raises(RunError, match=message):
        create_app(Predictor(predictor.config, predictor.encoder, predictor.model, fuser=fuser))


# -- bad payloads: (what, endpoint, change to a good body, status, the field named) -------------------
def _drop(field):
    return lambda body: body["rows"][0].pop(field)


def _set(path, value):
    def change(body):
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


BAD = [
    ("missing field", "score", _drop("brand"), "rows[0].brand", "missing"),
    ("numeric given as text", "score", _set(("rows", 0, "price"), "cheap"), "rows[0].price", "float_type"),
    ("category given as a boolean", "score", _set(("rows", 1, "brand"), True), "rows[1].brand", "wrong_type"),
    ("sequence given as an object", "score", _set(("rows", 0, "recent_categories"), {"a": 1}),
     "rows[0].recent_categories", "wrong_type"),
    ("unknown field", "score", _set(("rows", 0, "colour"), "red"), "rows[0].colour", "extra_forbidden"),
    ("unknown top-level field", "score", _set(("limit",), 3), "limit", "extra_forbidden"),
    ("no rows", "score", _set(("rows",), []), "rows", "too_short"),
    ("too many rows", "score", lambda b: b["rows"].extend(b["rows"][:1] * 8), "rows", "too_long"),
    ("rows not a list", "score", _set(("rows",), {"a": 1}), "rows", "list_type"),
    ("no candidates", "recommend", _set(("candidates",), []), "candidates", "too_short"),
    ("too many candidates", "recommend",
     lambda b: b["candidates"].extend({**c, "id": f"x{i}"} for i, c in enumerate(b["candidates"] * 2)),
     "candidates", "too_long"),
    ("k = 0", "recommend", _set(("k",), 0), "k", "greater_than_equal"),
    ("k negative", "recommend", _set(("k",), -3), "k", "greater_than_equal"),
    ("k as text", "recommend", _set(("k",), "3"), "k", "int_type"),
    ("candidate without id", "recommend", lambda b: b["candidates"][1].pop("id"), "candidates[1].id", "missing"),
    ("duplicate id", "recommend", _set(("candidates", 2, "id"), "item-0"), "candidates[2].id", "value_error"),
    ("id in context", "recommend", _set(("context", "id"), "x"), "context.id", "extra_forbidden"),
    ("field in context and candidate", "recommend", _set(("candidates", 1, "device"), "ios"),
     "candidates[1].device", "value_error"),
    ("field in neither", "recommend", lambda b: b["candidates"][2].pop("brand"), "candidates[2].brand", "missing"),
    ("context sequence of floats", "recommend", _set(("context", "recent_categories"), [1.5]),
     "context.recent_categories", "wrong_type"),
]


@pytest.mark.parametrize("what, endpoint, change, field, kind", BAD, ids=[b[0] for b in BAD])
def test_bad_payload_is_a_422_naming_the_field(client, raw_rows, what, endpoint, change, field, kind):
    body = {"rows": [dict(r) for r in raw_rows[:4]]} if endpoint == "score" else recommend_body(raw_rows[:4])
    change(body)
    got = client.post(f"/v1/{endpoint}", json=body)
    assert got.status_code == 422, got.text
    answer = got.json()
    assert answer["message"].startswith(f"{field}: "), answer["message"]
    assert answer["detail"][0]["type"] == kind


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client, raw_rows, literal):
    text = json.dumps({"rows": raw_rows[:1]}).replace(f'"price": {raw_rows[0]["price"]}', f'"price": {literal}')
    got = client.post("/v1/score", content=text, headers={"content-type": "application/json"})
    assert got.status_code == 422 and got.json()["message"] == "rows[0].price: Input should be a finite number"


def test_malformed_json(client):
    got = client.post("/v1/score", content=b'{"rows": [', headers={"content-type": "application/json"})
    assert got.status_code == 422
    assert got.json()["message"].startswith("body: invalid JSON at character 10")


@pytest.mark.parametrize("body", [b'{"rows": ["\xff"]}', b'{"rows": [' + b"9" * 5000 + b"]}"], ids=["utf8", "long-int"])
def test_a_body_json_cannot_read_is_a_422_too(client, body):
    """Bytes that are not UTF-8 and integer literals past Python's 4300-digit limit fail inside the
    JSON parser with other errors than a syntax error; the answer has the same shape."""
    got = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert got.status_code == 422 and got.json()["message"].startswith("body: could not be read as JSON")
    assert client.get("/v1/nope").status_code == 404  # other HTTP errors keep FastAPI's answer


def test_a_body_that_is_not_an_object(client):
    got = client.post("/v1/recommend", json=[1, 2])
    assert got.status_code == 422 and got.json()["message"].startswith("body: ")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_a_415(client, ctype):
    headers = {"content-type": ctype} if ctype else {}
    got = client.post("/v1/score", content=b'{"rows": []}', headers=headers)
    assert got.status_code == 415
    assert "expected Content-Type: application/json" in got.json()["message"]


def test_json_with_charset_is_accepted(client, raw_rows):
    got = client.post("/v1/score", content=json.dumps({"rows": raw_rows[:1]}).encode(),
                      headers={"content-type": "application/json; charset=utf-8"})  # fmt: skip
    assert got.status_code == 200


def test_body_too_large_is_a_413(client, raw_rows):
    body = json.dumps({"rows": raw_rows[:1], "pad": "x" * 30_000}).encode()
    got = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert got.status_code == 413
    assert got.json()["message"] == f"request body too large: the limit is 20,000 bytes, got {len(body):,} bytes"


def test_chunked_body_too_large_is_a_413(client):
    chunks = (b'{"rows": [' + b" " * 5000 for _ in range(5))  # no Content-Length: counted while read
    got = client.post("/v1/score", content=chunks, headers={"content-type": "application/json"})
    assert got.status_code == 413 and "the limit is 20,000 bytes" in got.json()["message"]
