"""Running the app under uvicorn: on a socket bound before the model loads (a port in use is an
error at once), with a graceful shutdown: SIGTERM (or SIGINT) stops accepting connections, marks
the service not ready, lets the requests in flight finish (at most ``shutdown_timeout`` seconds),
then returns, so that the command exits 0."""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable

from mtlrec.errors import ConfigError

logger = logging.getLogger("mtlrec.serve")


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, not yet listening (connections are refused until
    the server starts); ``reuse_port``: other sockets may bind the same port (SO_REUSEPORT), and
    the kernel spreads connections over those that listen."""
    try:
        family, kind, proto, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say
        # they are TCP (with it on, a keep-alive client waits ~40 ms for each answer's last segment)
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as err:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err})") from None
    sock.set_inheritable(True)
    return sock


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config, with mtlrec.serve's records (reloads, 500s with their request id and
    traceback) printed beside uvicorn's."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mtlrec"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def uvicorn_config(app: Any, *, log_level: str, shutdown_timeout: float, **kwargs: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=log_level,
        log_config=log_config(log_level),
        access_log=log_level == "debug",
        timeout_graceful_shutdown=shutdown_timeout,
        lifespan="on",
        **kwargs,
    )


def make_server(app: Any, *, log_level: str = "info", shutdown_timeout: float = 30.0) -> Any:
    """A uvicorn Server for ``app`` (made by ``create_app``) whose exit signal also marks the
    service as stopping (/v1/ready answers 503 from then on)."""
    import uvicorn

    serving = app.state.serving

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            serving.stopping = True
            if not self.should_exit:
                logger.info("%s: finishing the requests in flight (at most %g s), then exiting",
                            signal.Signals(sig).name, shutdown_timeout)  # fmt: skip
            super().handle_exit(sig, frame)

    return Server(uvicorn_config(app, log_level=log_level, shutdown_timeout=shutdown_timeout))


def serve(app: Any, sock: socket.socket, *, log_level: str = "info", shutdown_timeout: float = 30.0) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT, then shut down gracefully and return."""
    server = make_server(app, log_level=log_level, shutdown_timeout=shutdown_timeout)
    # uvicorn raises the signal it stopped on again once it is done, with the handler that was there
    # before it: here one that does nothing, so a SIGTERM ends the command with status 0
    main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: None) if main else None
    try:
        server.run(sockets=[sock])
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def serve_workers(
    make_app: Callable[[dict], Any],
    settings: dict,
    workers: int,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    shutdown_timeout: float = 30.0,
) -> int:
    """``workers`` processes, each running ``make_app(settings)`` on its own socket bound with
    SO_REUSEPORT to ``host``:``port`` (the kernel spreads the connections over them). SIGTERM or
    SIGINT is passed on to every worker, which shuts down gracefully. A worker that ends on its own
    stops the others. Returns the exit status: 0 after SIGTERM (130 after SIGINT) when every worker
    ended cleanly, 1 otherwise."""
    import logging.config
    import multiprocessing

    logging.config.dictConfig(log_config(log_level))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no torch state forked
    args = (make_app, settings, host, port, log_level, shutdown_timeout)
    processes = [context.Process(target=_worker, args=args, name=f"mtlrec-serve-{i}") for i in range(workers)]
    stopping = threading.Event()
    received: list[int] = []

    def stop(sig: int, frame: Any) -> None:
        received.append(sig)
        if not stopping.is_set():
            logger.info("%s: stopping %d workers (each finishes its requests in flight, at most %g s)",
                        signal.Signals(sig).name, workers, shutdown_timeout)  # fmt: skip
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for p in processes:
            p.start()
        while not stopping.wait(0.2):
            ended = [p for p in processes if not p.is_alive()]
            if ended:
                logger.error("worker process %d ended with status %s: stopping the others", ended[0].pid,
                             ended[0].exitcode)  # fmt: skip
                break
        for p in processes:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + shutdown_timeout + 10
        for p in processes:
            p.join(max(deadline - time.monotonic(), 0.1))
            if p.is_alive():
                p.kill()
                p.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not (stopping.is_set() and all(p.exitcode == 0 for p in processes)):
        return 1
    return 130 if received[0] == signal.SIGINT else 0  # as a Ctrl-C of one process ends (KeyboardInterrupt)


def _worker(make_app: Callable[[dict], Any], settings: dict, host: str, port: int, log_level: str,
            shutdown_timeout: float) -> None:  # fmt: skip
    """One process of ``serve_workers``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent passes a Ctrl-C on as SIGTERM
    try:
        sock = bind(host, port, reuse_port=True)
        app = make_app(settings)
    except Exception as err:  # noqa: BLE001  (one line, as the CLI prints its errors)
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    serve(app, sock, log_level=log_level, shutdown_timeout=shutdown_timeout)
