"""Property-based fuzzing of the request bodies (hypothesis): whatever the body, the answer is a
200 or a documented 4xx with a one-line message, never a 500, and the service keeps answering.
Bodies: any JSON value, raw bytes, and near-valid requests whose fields take values of every type."""

from __future__ import annotations

import json
import math

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra (hypothesis) is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mtlrec.serve.app import create_app  # noqa: E402
from mtlrec.serve.schemas import Limits  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
DOCUMENTED = {200, 413, 415, 422}

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def fuzzed(predictor, client_for):
    """(client, the request columns and their kinds) of a service with small limits."""
    app = create_app(predictor, Limits(max_rows=16, max_candidates=16, max_body_bytes=50_000))
    kinds = dict(app.state.serving.service.request_fields)
    return client_for(app), kinds


def valid_value(kind: str):
    if kind == "numeric":
        return st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "sequence":
        return st.none() | st.lists(st.integers(0, 30) | st.text(max_size=5), max_size=25) | st.text(max_size=30)
    return st.none() | st.integers(-5, 500) | st.text(max_size=8)


def field_value(kind: str):
    """Mostly what the field takes, sometimes anything."""
    return st.one_of(valid_value(kind), valid_value(kind), json_values)


def rows(kinds: dict):
    row = st.fixed_dictionaries({c: field_value(k) for c, k in kinds.items()},
                                optional={"surplus": json_values})  # fmt: skip
    return st.lists(row, min_size=0, max_size=20)


def check(client, path: str, content: bytes) -> None:
    got = client.post(path, content=content, headers={"content-type": "application/json"})
    assert got.status_code in DOCUMENTED, (got.status_code, got.text[:500])
    answer = got.json()
    if got.status_code != 200:
        assert isinstance(answer["message"], str) and "\n" not in answer["message"]
        assert "Traceback" not in got.text


def dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN and Infinity literals included


@FUZZ
@given(body=json_values)
def test_any_json_value(fuzzed, body):
    client, _ = fuzzed
    for path in ("/v1/score", "/v1/recommend"):
        check(client, path, dumps(body))


@FUZZ
@given(content=st.binary(max_size=300))
def test_any_bytes(fuzzed, content):
    client, _ = fuzzed
    check(client, "/v1/recommend", content)


@FUZZ
@given(data=st.data())
def test_near_valid_score_requests(fuzzed, data):
    client, kinds = fuzzed
    body = {"rows": data.draw(rows(kinds))}
    got = client.post("/v1/score", content=dumps(body), headers={"content-type": "application/json"})
    assert got.status_code in DOCUMENTED, got.text[:500]
    if got.status_code == 200:
        predictions = got.json()["predictions"]
        assert all(len(v) == len(body["rows"]) for v in predictions.values())


@FUZZ
@given(data=st.data())
def test_near_valid_recommend_requests(fuzzed, data):
    client, kinds = fuzzed
    context_columns = data.draw(st.sets(st.sampled_from(sorted(kinds))))
    context = {c: data.draw(field_value(kinds[c])) for c in context_columns}
    candidates = []
    for row in data.draw(rows(kinds)):
        candidate = {c: v for c, v in row.items() if c not in context_columns or data.draw(st.booleans())}
        candidate["id"] = data.draw(st.integers(0, 5) | st.text(max_size=3) | json_values)
        candidates.append(candidate)
    body = {"context": context, "candidates": candidates, "k": data.draw(st.integers(-2, 30) | json_values)}
    got = client.post("/v1/recommend", content=dumps(body), headers={"content-type": "application/json"})
    assert got.status_code in DOCUMENTED, got.text[:500]
    if got.status_code == 200:
        for items in got.json()["lists"].values():
            assert len(items) <= min(body["k"], len(candidates))
            scores = [x["score"] for x in items if x["score"] is not None and math.isfinite(x["score"])]
            assert scores == sorted(scores, reverse=True)


def test_the_service_still_answers_after_the_fuzzing(fuzzed, raw_rows):
    client, _ = fuzzed
    assert client.get("/v1/health").status_code == 200
    assert client.post("/v1/score", json={"rows": raw_rows[:3]}).status_code == 200
