from __future__ import annotations

from pathlib import Path

import typer

NAME = "serve"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    threads: int = typer.Option(1, "--threads", help="Torch threads per request (1 suits small batches)."),
    max_rows: int = typer.Option(1000, "--max-rows", help="Rows per /v1/score request."),
    max_candidates: int = typer.Option(1000, "--max-candidates", help="Candidates per /v1/recommend request."),
    max_body_bytes: int = typer.Option(4 * 2**20, "--max-body-bytes", help="Largest request body."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's: critical, error, warning, info, debug."),
) -> None:
    """HTTP service: /v1/score, /v1/recommend, /v1/model, /v1/health; OpenAPI docs at /docs."""
    import torch
    import uvicorn

    from mtlrec.errors import ConfigError
    from mtlrec.serve.app import create_app
    from mtlrec.serve.schemas import Limits

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port: expected 1..65535, got {port}")
    if threads < 1:
        raise ConfigError(f"--threads: expected a number >= 1, got {threads}")
    try:
        limits = Limits(max_rows=max_rows, max_candidates=max_candidates, max_body_bytes=max_body_bytes)
    except ValueError as err:
        raise ConfigError(f"--{str(err).removeprefix('limits: ').replace('_', '-')}") from None
    torch.set_num_threads(threads)
    app = create_app(run_dir, limits)
    print(f"serving {run_dir} on http://{host}:{port} (docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
