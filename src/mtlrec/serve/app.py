"""The HTTP service (FastAPI): a run directory loaded once, scoring rows and ranking candidates.

    GET  /v1/health     liveness: the process answers (never waits for the model)
    GET  /v1/ready      readiness: 200 while a model is loaded and the service is not stopping, else 503
    GET  /v1/model      tasks, features and their kinds, model, version, the run served, fusion, limits
    POST /v1/score      {"rows": [{column: value}]} -> per-task predictions and the fused score per row
    POST /v1/recommend  {"context": {...}, "candidates": [{"id": ..., ...}], "k": 10}
                        -> {"lists": {task: [{"id", "score"}], "fused": [...]}, "fusion": formula}
    POST /v1/admin/reload  {"run": "day8"} with Authorization: Bearer <token>: serve another run
    GET  /docs          OpenAPI documentation (request models generated from the run's schema)

Concurrency: the event loop only reads, validates and routes requests; the model runs on a pool
of ``threads`` threads (one torch or onnxruntime thread each), so that /v1/health and small requests
do not wait behind a large one. Each request reads the Service being served once, at its start
(see ``mtlrec.serve.reload``): a reload never mixes two runs in one answer.

Errors: 422 for a request that does not match its model or is not readable JSON ({"detail":
[{"loc", "msg", "type"}], "message": one line naming the first field}), 413 for a body over the size limit, 415 for a POST
that is not JSON, 408 for a body that does not arrive within the request timeout, 503 for an answer
not ready within it, 500 (no traceback: a request id, which the log prints with the traceback) for a
bug. Every answer carries its request id in the X-Request-Id header.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which name
# request models generated at run time

import asyncio
import hmac
import json
import logging
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mtlrec.errors import RunError
from mtlrec.serve.predictor import Predictor
from mtlrec.serve.reload import OutsideRoot, ReloadBusy, Serving, Watcher, point
from mtlrec.serve.schemas import Health, Limits, RecommendResponse, ScoreResponse
from mtlrec.serve.service import RequestError, Service

logger = logging.getLogger("mtlrec.serve")


@dataclass(frozen=True)
class Options:
    """How the service runs (``Limits``: what one request may hold).

    threads          requests scored at once (a pool of threads, one torch/onnxruntime thread each)
    backend          "torch" or "onnx" (exported at load, checked equal to PyTorch)
    device           where the torch backend runs the model: cpu (default) | auto | cuda | cuda:N
    request_timeout  seconds a body may take to arrive, and an answer to be ready (408 / 503 past them)
    admin_token      the bearer token of /v1/admin/reload (None: admin endpoints are off)
    runs_root        the directory under which /v1/admin/reload finds runs (None: reload by path is off)
    watch            a path (run directory or symlink) polled every ``watch_interval`` s; reload on change
    announce         with several worker processes: a symlink to the run served, which a reload through
                     /v1/admin/reload points to the new run and which every process watches (so all follow)
    """

    threads: int = 1
    backend: str = "torch"
    device: str = "cpu"
    request_timeout: float = 10.0
    admin_token: str | None = None
    runs_root: Path | None = None
    watch: Path | None = None
    watch_interval: float = 1.0
    announce: Path | None = None

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads: expected a number >= 1, got {self.threads}")
        if not self.request_timeout > 0:
            raise ValueError(f"request-timeout: expected a number of seconds > 0, got {self.request_timeout}")
        if not self.watch_interval > 0:
            raise ValueError(f"watch-interval: expected a number of seconds > 0, got {self.watch_interval}")


def create_app(run: "str | Path | Predictor", limits: Limits = Limits(), options: Options = Options()) -> Any:
    """A FastAPI app serving ``run`` (a run directory or a loaded Predictor)."""
    from fastapi import FastAPI, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, ValidationError
    from starlette.exceptions import HTTPException

    import mtlrec

    def load(path: Path) -> Service:
        return Service(Predictor.load(path, options.device), limits, options.backend)

    predictor = run if isinstance(run, Predictor) else Predictor.load(run, options.device)
    serving = Serving(Service(predictor, limits, options.backend), load, options.runs_root)
    models = serving.service.models
    pool = ThreadPoolExecutor(options.threads, thread_name_prefix="mtlrec-score")
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        paths = [p for p in (options.watch, options.announce) if p is not None]
        watchers = [Watcher(serving, path, options.watch_interval).start() for path in paths]
        try:
            yield
        finally:
            serving.stopping = True
            for watcher in watchers:
                watcher.stop()
            pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title=f"mtlrec: {predictor.config.model.name}",
        version=mtlrec.__version__,
        description="Multi-task predictions and ranked lists from one trained run. "
        f"Tasks: {', '.join(t.name for t in predictor.tasks)}. Fusion: {serving.service.fuser.describe()}.",
        lifespan=lifespan,
    )
    app.state.serving = serving
    app.add_middleware(RequestGuard, max_body_bytes=limits.max_body_bytes, timeout=options.request_timeout)
    app.add_middleware(RequestIds)  # outermost: every answer gets an id, every unhandled error a clean 500

    async def answer(work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)`` on the pool, waited for at most the request timeout (a 503 past it; work
        that has not started by then is dropped)."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, work, *args), options.request_timeout)
        except TimeoutError:
            message = f"no answer within the request timeout ({options.request_timeout:g} s): the service is busy"
            return error_response(503, message)

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
        model = serving.service.predictor.config.model.name
        return JSONResponse({"status": "ok", "model": model, "uptime_s": round(time.time() - started, 3)})

    @app.get("/v1/ready")
    async def ready() -> Any:
        if serving.stopping:
            return JSONResponse({"status": "stopping", "run": serving.service.run}, status_code=503)
        return JSONResponse({"status": "ready", "run": serving.service.run})

    @app.get("/v1/model")
    async def model() -> Any:
        service = serving.service
        return JSONResponse({**service.describe(), "serving": serving.status(),
                             "concurrency": {"threads": options.threads}})  # fmt: skip

    ScoreRequest, RecommendRequest = models.score, models.recommend

    @app.post("/v1/score", response_model=ScoreResponse)
    async def score(body: ScoreRequest) -> Any:  # type: ignore[valid-type]
        service = serving.service  # read once: the whole answer comes from this run
        return await answer(_respond, service.score, {"rows": body.rows})

    @app.post("/v1/recommend", response_model=RecommendResponse)
    async def recommend(body: RecommendRequest) -> Any:  # type: ignore[valid-type]
        service = serving.service  # read once: the whole answer comes from this run
        request = {"context": body.context, "candidates": body.candidates, "k": body.k}
        return await answer(_respond, service.recommend, request)

    class ReloadRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        run: str

    @app.post("/v1/admin/reload", include_in_schema=False)
    async def admin_reload(request: Request) -> Any:
        if not options.admin_token:
            return error_response(403, "admin endpoints are off: start the service with --admin-token")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("latin-1"), options.admin_token.encode("utf-8")
        ):
            return error_response(401, "expected the header Authorization: Bearer <admin token>",
                                  headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        try:
            body = ReloadRequest.model_validate(json.loads(await request.body()))
        except (ValueError, RecursionError) as err:  # not JSON (or not UTF-8), or not {"run": "..."}
            if isinstance(err, ValidationError):
                return validation_response([{**e, "loc": ("body", *e["loc"])} for e in err.errors()])
            return validation_response([{"type": "json_unreadable", "loc": ("body",),
                                         "msg": f"could not be read as JSON ({err})"}])  # fmt: skip
        try:
            path = serving.resolve(body.run)
            result = await asyncio.to_thread(serving.reload, path)
            if options.announce is not None:
                point(options.announce, path)  # the other worker processes follow within watch_interval
            return JSONResponse(result)
        except OutsideRoot as err:
            return error_response(403, str(err))
        except ReloadBusy as err:
            return error_response(409, str(err))
        except RunError as err:
            return error_response(422, f"{err}; still serving {serving.service.run['path']}")

    return app


def _respond(endpoint: Callable[[dict[str, Any]], Any], request: dict[str, Any]) -> Any:
    """``endpoint(request)`` as JSON, or a 422 for a RequestError."""
    from fastapi.responses import JSONResponse

    try:
        return JSONResponse(endpoint(request))
    except RequestError as err:
        return validation_response([{"type": err.kind, "loc": ("body", *err.loc), "msg": err.message}])


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """An error other than a validation error: {"detail": message, "message": message}."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": message, "message": message}, status_code=status, headers=headers)


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
    Content-Length and again while reading, for chunked bodies), 408 when the body has not arrived
    within ``timeout`` seconds. The body it read is passed on."""

    def __init__(self, app: Any, max_body_bytes: int, timeout: float = 10.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout

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
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                await _error(send, 408, f"the request body did not arrive within {self.timeout:g} s")
                return
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


class RequestIds:
    """ASGI middleware: a request id for every HTTP request, in the X-Request-Id header of its
    answer; an exception no handler took is logged with that id and its traceback, and answered as
    a 500 that names the id, never the traceback."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        started = False

        async def send_with_id(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request %s (%s %s) failed", request_id, scope["method"], scope["path"])
            if not started:
                message = f"internal error (request id {request_id}; the service's log has the details)"
                body = json.dumps({"detail": message, "message": message, "request_id": request_id}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                           (b"x-request-id", request_id.encode())]  # fmt: skip
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})


async def _error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"detail": message, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
