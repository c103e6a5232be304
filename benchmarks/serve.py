"""Serving latency and throughput: in-process scoring, and HTTP requests to `mtlrec serve` on loopback.

    python benchmarks/serve.py                    # trains a small run first (about 20 s)
    python benchmarks/serve.py --run runs/x --seconds 20
    python benchmarks/serve.py --run runs/x --only concurrency --settings torch:1x2,onnx:1x2
    python benchmarks/serve.py --run runs/x --only soak --settings onnx:1x2 --soak-seconds 60

In process (torch threads: 1), for each backend: POST /v1/recommend's work without HTTP for 1 and
500 candidates (``Service.recommend`` on a validated body: encoding, the model, fusion, ranking),
the same with pydantic validation of the JSON bytes and the JSON answer, and /v1/score's work for
500 rows.
Over HTTP, sequential: `mtlrec serve RUN` in a subprocess; a second process sends one request after
another (one keep-alive connection) for ``--seconds`` and reports latency percentiles and requests/s.
Concurrency: for each setting (backend:WORKERSxTHREADS), 1, 4 and 16 clients (keep-alive
connections of one asyncio process writing raw HTTP/1.1, so that the client costs little CPU) send
requests back to back for 1 and 500 candidates, while a third process asks /v1/health every 20 ms.
Soak: 4 clients (two with 1 candidate, two with 500) for ``--soak-seconds`` at one setting, with a
reload through /v1/admin/reload in the middle; failed requests and the server's memory before and
after.
Prints markdown tables, the machine's line and the load average (other processes slow every number
down).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import cpu_line  # noqa: E402

CONTEXT = ("device", "hour", "user_price_pref", "user_activity", "user_cat_clicks", "recent_categories")
TOKEN = "benchmark-token-" + "x" * 16


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms) if len(ms) else np.asarray([np.nan])
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99))}


def bodies(columns: list[str], n: int, seed: int = 5) -> dict[str, dict]:
    """{"recommend": one user's context and ``n`` candidates, "score": ``n`` rows} from the simulator."""
    from mtlrec.data.synthetic import simulate

    rows = simulate(rows=max(n, 50), users=20, items=max(n, 50), seed=seed).select(columns).slice(0, n).to_pylist()
    context = {c: rows[0][c] for c in CONTEXT if c in columns}
    candidates = [{"id": f"item-{i}", **{c: v for c, v in r.items() if c not in context}} for i, r in enumerate(rows)]
    return {"recommend": {"context": context, "candidates": candidates, "k": 10}, "score": {"rows": rows}}


def timed(fn, seconds: float, min_runs: int = 50) -> list[float]:
    """Milliseconds per call of ``fn``, called for ``seconds`` (at least ``min_runs`` times) after a warm-up."""
    for _ in range(10):
        fn()
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(out) < min_runs:
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


# -- in process ---------------------------------------------------------------------------------
def in_process(run: Path, seconds: float, backend: str) -> list[tuple[str, int, dict[str, float]]]:
    import torch

    from mtlrec.serve.app import Options, create_app

    torch.set_num_threads(1)
    service = create_app(run, options=Options(backend=backend)).state.serving.service
    models = service.models
    rows = []
    for n in (1, 500):
        b = bodies(list(models.columns), n)
        raw = json.dumps(b["recommend"]).encode()
        validated = models.recommend.model_validate_json(raw)
        body = {"context": validated.context, "candidates": validated.candidates, "k": validated.k}
        ms = timed(lambda: service.recommend(body), seconds)
        rows.append(("recommend: score + rank (validated body)", n, percentiles(ms)))

        def full() -> bytes:
            v = models.recommend.model_validate_json(raw)
            answer = service.recommend({"context": v.context, "candidates": v.candidates, "k": v.k})
            return json.dumps(answer).encode()

        rows.append(("recommend: JSON bytes -> validate -> score + rank -> JSON", n, percentiles(timed(full, seconds))))
        if n == 500:
            rows += breakdown(service, body, seconds)
            score_body = {"rows": b["score"]["rows"]}
            ms = timed(lambda: service.score(score_body), seconds)
            rows.append(("score: per-task predictions (validated body)", n, percentiles(ms)))
    return rows


def breakdown(service, body: dict, seconds: float) -> list[tuple[str, int, dict[str, float]]]:
    """The steps of ``service.recommend``, each timed alone."""
    from mtlrec.rank.lists import ranked_lists

    n = len(body["candidates"])
    columns = service.candidate_columns(body["context"], body["candidates"])
    batch = service.columns.encode(columns, n)
    preds = service.predict(columns, n)
    steps = [
        ("- request values -> columns", lambda: service.candidate_columns(body["context"], body["candidates"])),
        ("- encode columns -> tensors", lambda: service.columns.encode(columns, n)),
        ("- model forward (and outputs)", lambda: service.backend(batch)),
        ("- fusion + ranking", lambda: ranked_lists(preds, service.fuser, k=body["k"])),
    ]
    return [(what, n, percentiles(timed(fn, seconds / 2))) for what, fn in steps]


# -- servers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mtlrec serve RUN ARGS` in a subprocess on a free loopback port, until ``stop``."""

    def __init__(self, run: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cli = "from mtlrec.cli.main import entry; entry()"
        argv = [sys.executable, "-c", cli, "serve", str(run), "--port", str(self.port), "--log-level", "warning", *args]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env={**os.environ, "MTLREC_ADMIN_TOKEN": TOKEN})
        import httpx

        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.url}/v1/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start: {' '.join(argv)}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker processes, MB."""
        pids, total = [self.process.pid], 0.0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += [int(c) for c in children]
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def over_http(run: Path, seconds: float) -> list[tuple[int, int, dict[str, float], float, int]]:
    """`mtlrec serve` (defaults), then one sequential client process per request size."""
    from mtlrec.serve.predictor import Predictor

    columns = list(Predictor.load(run).encoder.schema.columns(labels=False))
    server = Server(run)
    try:
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in (1, 500):
                path = Path(tmp) / f"body{n}.json"
                path.write_text(json.dumps(bodies(columns, n)["recommend"]))
                args = [sys.executable, __file__, "--client", server.url, "--body", str(path), "--seconds", str(seconds)]
                stats = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
                out.append((n, path.stat().st_size, stats["latency"], stats["rps"], stats["requests"]))
        return out
    finally:
        server.stop()


def client(url: str, body_path: str, seconds: float) -> None:
    """The second process: POST the body again and again on one connection; print JSON stats."""
    import httpx

    body = Path(body_path).read_bytes()
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as http:

        def call() -> None:
            r = http.post("/v1/recommend", content=body, headers=headers)
            if r.status_code != 200:
                raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")

        t0 = time.perf_counter()
        ms = timed(call, seconds, min_runs=20)
        wall = time.perf_counter() - t0
    print(json.dumps({"latency": percentiles(ms), "rps": len(ms) / wall, "requests": len(ms)}))


# -- concurrent load: raw HTTP/1.1 on keep-alive connections --------------------------------------
async def _exchange(reader, writer, message: bytes) -> tuple[int, bytes]:
    writer.write(message)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _post(path: str, port: int, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


async def _clients(port: int, messages: list[bytes], seconds: float) -> dict:
    """One keep-alive connection per message, each sending its message back to back for ``seconds``."""
    end = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in messages]
    errors: list[str] = []

    async def one(i: int) -> None:
        reader = writer = None
        while time.perf_counter() < end:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t0 = time.perf_counter()
                status, answer = await _exchange(reader, writer, messages[i])
                if status != 200:
                    errors.append(f"HTTP {status}: {answer[:200]!r}")
                    continue
                latencies[i].append((time.perf_counter() - t0) * 1000)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as err:
                errors.append(f"{type(err).__name__}: {err}")
                writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(messages))))
    wall = time.perf_counter() - t0
    return {"latency": latencies, "wall": wall, "errors": errors}


def load(port: int, body_paths: list[str], seconds: float) -> None:
    """The client process: one connection per body file; prints JSON stats."""
    messages = [_post("/v1/recommend", port, Path(p).read_bytes()) for p in body_paths]
    out = asyncio.run(_clients(port, messages, seconds))
    print(json.dumps(out))


def probe(port: int, seconds: float, every: float = 0.02) -> None:
    """The health process: GET /v1/health every ``every`` seconds on one connection; prints JSON."""
    message = f"GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def run() -> dict:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ms, errors = [], 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status, _ = await _exchange(reader, writer, message)
            ms.append((time.perf_counter() - t0) * 1000)
            errors += status != 200
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - t0)))
        writer.close()
        return {"latency": ms, "errors": errors}

    print(json.dumps(asyncio.run(run())))


def _spawn(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise SystemExit(f"a client process failed ({process.returncode})")
    return json.loads(out)


def measure_load(server: Server, body_paths: list[Path], seconds: float) -> dict:
    """``len(body_paths)`` clients for ``seconds`` while the health process probes."""
    health = _spawn("--probe", server.port, "--seconds", seconds)
    clients = _spawn("--load", server.port, "--seconds", seconds, "--bodies", *body_paths)
    stats, probed = _finish(clients), _finish(health)
    requests = sum(len(x) for x in stats["latency"])
    return {
        "rps": requests / stats["wall"],
        "latency": percentiles([v for x in stats["latency"] for v in x]),
        "health": percentiles(probed["latency"]),
        "errors": len(stats["errors"]) + probed["errors"],
        "first_error": stats["errors"][0] if stats["errors"] else None,
        "requests": requests,
        "per_client": [len(x) for x in stats["latency"]],
    }


def parse_settings(text: str) -> list[tuple[str, int, int]]:
    """'torch:1x2,onnx:2x1' -> [(backend, workers, threads)]."""
    out = []
    for item in text.split(","):
        backend, _, shape = item.strip().partition(":")
        workers, _, threads = shape.partition("x")
        out.append((backend, int(workers), int(threads)))
    return out


def server_args(backend: str, workers: int, threads: int) -> list[str]:
    return ["--backend", backend, "--workers", str(workers), "--threads", str(threads)]


def concurrency(run: Path, settings: list[tuple[str, int, int]], seconds: float, tmp: Path) -> list[tuple]:
    from mtlrec.serve.predictor import Predictor

    columns = list(Predictor.load(run).encoder.schema.columns(labels=False))
    paths = {}
    for n in (1, 500):
        paths[n] = tmp / f"body{n}.json"
        paths[n].write_text(json.dumps(bodies(columns, n)["recommend"]))
    rows = []
    for backend, workers, threads in settings:
        server = Server(run, *server_args(backend, workers, threads))
        try:
            measure_load(server, [paths[500]] * 2, 2.0)  # warm-up
            for n in (1, 500):
                for clients in (1, 4, 16):
                    stats = measure_load(server, [paths[n]] * clients, seconds)
                    rows.append((backend, workers, threads, n, clients, stats))
                    print(f"  {backend} {workers}x{threads} n={n} clients={clients}: {stats['rps']:.0f} rps, "
                          f"p99 {stats['latency']['p99']:.1f} ms, health p99 {stats['health']['p99']:.1f} ms, "
                          f"errors {stats['errors']} {stats['first_error'] or ''}", file=sys.stderr, flush=True)  # fmt: skip
        finally:
            server.stop()
    return rows


def soak(run: Path, reload_to: Path | None, setting: tuple[str, int, int], seconds: float, tmp: Path) -> dict:
    """Mixed load for ``seconds`` with a reload in the middle (to ``reload_to``, or to a copy of the
    run with a new run.json id); failed requests, memory before and after."""
    from mtlrec.serve.predictor import Predictor

    root = tmp / "runs"
    skip = shutil.ignore_patterns("checkpoints", ".lock")
    shutil.copytree(run, root / "day1", ignore=skip)
    shutil.copytree(reload_to or run, root / "day2", ignore=skip)
    if reload_to is None:  # the same files as another run: a new id
        info = json.loads((root / "day2" / "run.json").read_text())
        (root / "day2" / "run.json").write_text(json.dumps({**info, "id": uuid.uuid4().hex}))
    columns = list(Predictor.load(run).encoder.schema.columns(labels=False))
    paths = []
    for n in (1, 500):
        paths.append(tmp / f"soak{n}.json")
        paths[-1].write_text(json.dumps(bodies(columns, n)["recommend"]))
    import httpx

    backend, workers, threads = setting
    server = Server(root / "day1", *server_args(backend, workers, threads), "--runs-root", str(root))
    try:
        measure_load(server, paths * 2, 3.0)  # warm-up: memory after the first requests
        before = server.rss_mb()
        served_before = httpx.get(f"{server.url}/v1/model").json()["serving"]
        health = _spawn("--probe", server.port, "--seconds", seconds)
        clients = _spawn("--load", server.port, "--seconds", seconds, "--bodies", *(paths * 2))
        time.sleep(seconds / 2)
        t0 = time.perf_counter()
        reload = httpx.post(f"{server.url}/v1/admin/reload", json={"run": "day2"}, timeout=120,
                            headers={"authorization": f"Bearer {TOKEN}"})  # fmt: skip
        reload_s = time.perf_counter() - t0
        stats, probed = _finish(clients), _finish(health)
        after = server.rss_mb()
        served_after = httpx.get(f"{server.url}/v1/model").json()["serving"]
    finally:
        code = server.stop()
    requests = sum(len(x) for x in stats["latency"])
    return {
        "setting": setting, "seconds": seconds, "requests": requests, "errors": len(stats["errors"]) + probed["errors"],
        "first_error": stats["errors"][0] if stats["errors"] else None,
        "latency_1": percentiles(stats["latency"][0] + stats["latency"][2]),
        "latency_500": percentiles(stats["latency"][1] + stats["latency"][3]),
        "health": percentiles(probed["latency"]), "reload": reload.status_code, "reload_answer": reload.json(),
        "reload_s": reload_s, "rss_before": before, "rss_after": after, "exit": code,
        "before": served_before, "after": served_after,
    }  # fmt: skip


def train_small(out: Path) -> Path:
    import torch

    from mtlrec.config import load_config
    from mtlrec.experiment import run_experiment

    torch.set_num_threads(1)
    overrides = ["data.synthetic.rows=20000", "train.epochs=1", "train.progress=false"]
    cfg = load_config(Path(__file__).parent.parent / "configs" / "synthetic.yaml", overrides)
    run_experiment(cfg, out)
    return out


def _p(p: dict) -> str:
    return f"{p['p50']:.2f} | {p['p99']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train a small one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per measurement")
    parser.add_argument("--only", default="in-process,sequential,concurrency,soak",
                        help="which parts: in-process, sequential, concurrency, soak")
    parser.add_argument("--backends", default="torch,onnx", help="backends measured in process")
    parser.add_argument("--settings", default="torch:1x1,torch:1x2,torch:2x1,onnx:1x1,onnx:1x2,onnx:2x1",
                        help="concurrency settings, backend:WORKERSxTHREADS; the soak uses the last one")
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--reload-to", type=Path, help="the run the soak reloads (default: a copy of --run, new id)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bodies", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.body, args.seconds)
        return
    if args.load:
        load(args.load, args.bodies, args.seconds)
        return
    if args.probe:
        probe(args.probe, args.seconds)
        return
    parts = {p.strip() for p in args.only.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_small(Path(tmp) / "run")
        from mtlrec.serve.predictor import Predictor

        model = Predictor.load(run).config.model.name
        print(f"model: {model}; load average before: {os.getloadavg()[0]:.2f}")
        print(cpu_line() + "\n")
        if "in-process" in parts:
            for backend in args.backends.split(","):
                print(f"In process, backend {backend} (torch threads 1), milliseconds:\n")
                print("| what | rows | p50 | p95 | p99 |\n|---|---|---|---|---|")
                for what, n, p in in_process(run, args.seconds, backend):
                    print(f"| {what} | {n} | {p['p50']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} |")
                print("\n('- ' rows: the steps of the recommend row above them, each timed alone)\n")
        if "sequential" in parts:
            print(f"Over HTTP (`mtlrec serve`, defaults; one client process, sequential requests), POST /v1/recommend, "
                  f"k=10; load average {os.getloadavg()[0]:.2f}:\n")  # fmt: skip
            print("| candidates | body kB | p50 ms | p95 ms | p99 ms | requests/s | requests |")
            print("|---|---|---|---|---|---|---|")
            for n, size, p, rps, count in over_http(run, args.seconds):
                print(f"| {n} | {size / 1000:.1f} | {p['p50']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} | {rps:.1f} | {count} |")
            print()
        settings = parse_settings(args.settings)
        if "concurrency" in parts:
            load_before = os.getloadavg()[0]
            rows = concurrency(run, settings, args.seconds, Path(tmp))
            print(f"Concurrent clients over HTTP, POST /v1/recommend (k=10), {args.seconds:g} s each; "
                  f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after:\n")  # fmt: skip
            print("| backend | workers x threads | candidates | clients | requests/s | p50 ms | p99 ms | "
                  "/v1/health p50 ms | /v1/health p99 ms | errors |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|---|---|")
            for backend, workers, threads, n, clients, st in rows:
                print(f"| {backend} | {workers} x {threads} | {n} | {clients} | {st['rps']:.0f} | {_p(st['latency'])} "
                      f"| {_p(st['health'])} | {st['errors']} |")  # fmt: skip
            print()
        if "soak" in parts:
            load_before = os.getloadavg()[0]
            out = soak(run, args.reload_to, settings[-1], args.soak_seconds, Path(tmp))
            backend, workers, threads = out["setting"]
            print(f"Soak: {out['seconds']:g} s, backend {backend}, {workers} x {threads}, 4 clients (two with 1 "
                  f"candidate, two with 500), a reload at {out['seconds'] / 2:g} s; load average {load_before:.2f} "
                  f"before, {os.getloadavg()[0]:.2f} after:\n")  # fmt: skip
            print("| requests | failed | p50 / p99 ms, 1 candidate | p50 / p99 ms, 500 | /v1/health p99 ms | "
                  "reload | server RSS MB before -> after | exit status |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|")
            print(f"| {out['requests']} | {out['errors']} | {_p(out['latency_1']).replace(' |', ' /')} | "
                  f"{_p(out['latency_500']).replace(' |', ' /')} | {out['health']['p99']:.2f} | "
                  f"HTTP {out['reload']} in {out['reload_s']:.1f} s | {out['rss_before']:.0f} -> {out['rss_after']:.0f} "
                  f"| {out['exit']} |")  # fmt: skip
            print(f"\nserving before: {out['before']}\nserving after: {out['after']}")
            if out["first_error"]:
                print(f"first error: {out['first_error']}")
        print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
