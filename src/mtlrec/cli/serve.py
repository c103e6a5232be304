from __future__ import annotations

import tempfile
from pathlib import Path

import typer

NAME = "serve"
TOKEN_ENV = "MTLREC_ADMIN_TOKEN"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory (or a symlink to one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    threads: int = typer.Option(1, "--threads", help="Requests scored at once in each process (one thread each)."),
    workers: int = typer.Option(
        1, "--workers", help="Processes, each with its own copy of the model and --threads threads."
    ),
    backend: str = typer.Option(
        "torch", "--backend", help="What runs the model: torch, or onnx (exported at load, checked equal to PyTorch)."
    ),
    device: str = typer.Option(
        "cpu", "--device", help="Where the model runs: cpu, auto (a GPU if torch sees one), cuda or cuda:N."
    ),
    max_rows: int = typer.Option(1000, "--max-rows", help="Rows per /v1/score request."),
    max_candidates: int = typer.Option(1000, "--max-candidates", help="Candidates per /v1/recommend request."),
    max_body_bytes: int = typer.Option(4 * 2**20, "--max-body-bytes", help="Largest request body."),
    request_timeout: float = typer.Option(
        10.0, "--request-timeout", help="Seconds for a body to arrive (408 past it) and an answer to be ready (503)."
    ),
    shutdown_timeout: float = typer.Option(
        30.0, "--shutdown-timeout", help="Seconds the requests in flight get to finish after SIGTERM."
    ),
    admin_token: str = typer.Option(
        None, "--admin-token", envvar=TOKEN_ENV, show_envvar=True,
        help="Bearer token of POST /v1/admin/reload (off without one). The environment variable keeps it out of `ps`.",
    ),  # fmt: skip
    runs_root: Path = typer.Option(
        None, "--runs-root", help="The directory /v1/admin/reload may load runs from (default: RUN's parent)."
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Poll RUN and serve the run it holds or points to whenever it changes."
    ),
    watch_interval: float = typer.Option(1.0, "--watch-interval", help="Seconds between two polls of --watch."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's: critical, error, warning, info, debug."),
) -> None:
    """HTTP service: /v1/score, /v1/recommend, /v1/model, /v1/health, /v1/ready, /v1/admin/reload; docs at /docs."""
    from mtlrec.errors import ConfigError
    from mtlrec.serve.backend import BACKENDS

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port: expected 1..65535, got {port}")
    for name, value in (("--threads", threads), ("--workers", workers)):
        if value < 1:
            raise ConfigError(f"{name}: expected a number >= 1, got {value}")
    for name, value in (("--request-timeout", request_timeout), ("--shutdown-timeout", shutdown_timeout),
                        ("--watch-interval", watch_interval)):  # fmt: skip
        if not value > 0:
            raise ConfigError(f"{name}: expected a number of seconds > 0, got {value}")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got '{backend}'")
    from mtlrec.device import resolve_device

    device = str(resolve_device(device, key="--device"))  # checked here, before the port is bound
    if log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise ConfigError(f"--log-level: expected critical, error, warning, info or debug, got '{log_level}'")
    if admin_token is not None and (len(admin_token) < 16 or not admin_token.isascii() or not admin_token.isprintable()
                                    or " " in admin_token):  # fmt: skip
        raise ConfigError("--admin-token: expected at least 16 printable ASCII characters without spaces")
    _limits(max_rows, max_candidates, max_body_bytes)
    root = runs_root if runs_root is not None else run_dir.absolute().parent
    if admin_token and not root.is_dir():
        raise ConfigError(f"--runs-root {root}: no such directory")
    settings = {
        "run": str(run_dir), "threads": threads, "backend": backend, "device": device, "max_rows": max_rows,
        "max_candidates": max_candidates, "max_body_bytes": max_body_bytes, "request_timeout": request_timeout,
        "admin_token": admin_token, "runs_root": str(root), "watch": watch, "watch_interval": watch_interval,
    }  # fmt: skip
    from mtlrec.serve.server import bind, serve, serve_workers

    sock = bind(host, port)  # before loading: a port in use (even by SO_REUSEPORT listeners) is an error at once
    shown = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if workers == 1:
        app = _app(settings)
        print(f"serving {run_dir} on {shown} (docs: {shown}/docs)", flush=True)
        serve(app, sock, log_level=log_level.lower(), shutdown_timeout=shutdown_timeout)
        return
    _app(settings)  # the run loads here once first: its errors stop the command before any process starts
    sock.close()  # each worker binds its own socket to the port, with SO_REUSEPORT
    with tempfile.TemporaryDirectory(prefix="mtlrec-serve-") as tmp:
        # the run the workers serve: a symlink that a worker retargets after /v1/admin/reload, and
        # that every worker watches, so that all of them follow
        announce = Path(tmp) / "run"
        announce.symlink_to(run_dir.resolve(), target_is_directory=True)
        settings["announce"] = str(announce)
        print(f"serving {run_dir} on {shown} with {workers} processes (docs: {shown}/docs)", flush=True)
        code = serve_workers(_app, settings, workers, host, port, log_level=log_level.lower(),
                             shutdown_timeout=shutdown_timeout)  # fmt: skip
    if code:
        raise typer.Exit(code)


def _app(settings: dict):
    import torch

    from mtlrec.serve.app import Options, create_app

    torch.set_num_threads(1)  # one thread per request: --threads requests run side by side
    limits = _limits(settings["max_rows"], settings["max_candidates"], settings["max_body_bytes"])
    run = Path(settings["run"])
    options = Options(
        threads=settings["threads"],
        backend=settings["backend"],
        device=settings["device"],
        request_timeout=settings["request_timeout"],
        admin_token=settings["admin_token"],
        runs_root=Path(settings["runs_root"]),
        watch=run if settings["watch"] else None,
        watch_interval=settings["watch_interval"],
        announce=Path(settings["announce"]) if settings.get("announce") else None,
    )
    return create_app(run, limits, options)


def _limits(max_rows: int, max_candidates: int, max_body_bytes: int):
    from mtlrec.errors import ConfigError
    from mtlrec.serve.schemas import Limits

    try:
        return Limits(max_rows=max_rows, max_candidates=max_candidates, max_body_bytes=max_body_bytes)
    except ValueError as err:
        raise ConfigError(f"--{str(err).removeprefix('limits: ').replace('_', '-')}") from None
