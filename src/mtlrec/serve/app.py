"""The HTTP service (FastAPI): a run directory loaded once, scoring rows and ranking candidates.

    GET  /v1/health     liveness
    GET  /v1/model      tasks, features and their kinds, model, version, fusion, limits
    POST /v1/score      {"rows": [{column: value}]} -> per-task predictions and the fused score per row
    POST /v1/recommend  {"context": {...}, "candidates": [{"id": ..., ...}], "k": 10}
                        -> {"lists": {task: [{"id", "score"}], "fused": [...]}, "fusion": formula}
    GET  /docs          OpenAPI documentation (request models generated from the run's schema)

Errors: 422 for a request that does not match its model or is not readable JSON ({"detail":
[{"loc", "msg", "type"}], "message": one line naming the first field}), 413 for a body over the size limit, 415 for a POST
that is not JSON.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which name
# request models generated at run time

import math
from pathlib import Path
from typing import Any

from mtlrec.serve.predictor import Predictor
from mtlrec.serve.schemas import Health, Limits, RecommendResponse, ScoreResponse
from mtlrec.serve.service import RequestError, Service


def create_app(run: "str | Path | Predictor", limits: Limits = Limits()) -> Any:
    """A FastAPI app serving ``run`` (a run directory or a loaded Predictor)."""
    from fastapi import FastAPI
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from fastapi.responses import JSONResponse

    import mtlrec

    predictor = run if isinstance(run, Predictor) else Predictor.load(run)
    service = Service(predictor, limits)
    models = service.models
    app = FastAPI(
        title=f"mtlrec: {predictor.config.model.name}",
        version=mtlrec.__version__,
        description="Multi-task predictions and ranked lists from one trained run. "
        f"Tasks: {', '.join(t.name for t in predictor.tasks)}. Fusion: {service.fuser.describe()}.",
    )
    app.state.service = service
    app.add_middleware(RequestGuard, max_body_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Any, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(HTTPException)
    async def unreadable(request: Any, exc: HTTPException) -> Any:
        # FastAPI's 400 for a body its JSON parser fails on with no syntax error (bytes that are not
        # UTF-8, an integer past Python's digit limit): the same 422 shape as other bad bodies
        if exc.status_code != 400:
            return await http_exception_handler(request, exc)
        error = {"type": "json_unreadable", "loc": ("body",), "msg": f"could not be read as JSON ({exc.detail})"}
        return validation_response([error])

    @app.get("/v1/health", response_model=Health)
    async def health() -> Any:
        return JSONResponse(service.health())

    @app.get("/v1/model")
    async def model() -> Any:
        return JSONResponse(service.describe())

    ScoreRequest, RecommendRequest = models.score, models.recommend

    @app.post("/v1/score", response_model=ScoreResponse)
    async def score(body: ScoreRequest) -> Any:  # type: ignore[valid-type]
        return JSONResponse(service.score({"rows": body.rows}))

    @app.post("/v1/recommend", response_model=RecommendResponse)
    async def recommend(body: RecommendRequest) -> Any:  # type: ignore[valid-type]
        request = {"context": body.context, "candidates": body.candidates, "k": body.k}
        try:
            return JSONResponse(service.recommend(request))
        except RequestError as err:
            return validation_response([{"type": err.kind, "loc": ("body", *err.loc), "msg": err.message}])

    return app


def _where(loc: Any) -> str:
    """("body", "candidates", 3, "price") -> "candidates[3].price"."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _small(value: Any) -> bool:
    """Whether an invalid input is worth echoing: a string, a finite number, true/false or null."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def validation_response(errors: Any) -> Any:
    """422 with FastAPI's ``detail`` list (large inputs left out) and a one-line ``message``."""
    from fastapi.responses import JSONResponse

    detail = []
    for e in errors:
        item = {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        if e["type"] == "json_invalid":
            item["msg"] = f"invalid JSON at character {e['loc'][-1]}: {e.get('ctx', {}).get('error', e['msg'])}"
            item["loc"] = ["body"]
        elif "input" in e and _small(e["input"]):
            item["input"] = e["input"]
        detail.append(item)
    first = detail[0]
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return JSONResponse(
        {"detail": detail, "message": f"{_where(first['loc'])}: {first['msg']}{more}"}, status_code=422
    )


class RequestGuard:
    """ASGI middleware for POST bodies: 415 unless JSON, 413 past ``max_body_bytes`` (checked on
    Content-Length and again while reading, for chunked bodies). The body it read is passed on."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            shown = ctype.decode("latin-1") or "none"
            await _error(send, 415, f"expected Content-Type: application/json, got {shown}")
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _error(send, 413, self._too_large(int(length)))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _error(send, 413, self._too_large(None))
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self, size: int | None) -> str:
        got = f"{size:,} bytes" if size is not None else "more than that"
        return f"request body too large: the limit is {self.max_body_bytes:,} bytes, got {got}"


async def _error(send: Any, status: int, message: str) -> None:
    import json

    body = json.dumps({"detail": message, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
