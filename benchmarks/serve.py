"""Serving latency: in-process scoring, and HTTP requests to `mtlrec serve` on loopback.

    python benchmarks/serve.py                    # trains a small run first (about 20 s)
    python benchmarks/serve.py --run runs/x --seconds 20

In process (torch threads: 1): POST /v1/recommend's work without HTTP for 1 and 500 candidates
(``Service.recommend`` on a validated body: encoding, the model, fusion, ranking), the same with
pydantic validation of the JSON bytes and the JSON answer, and /v1/score's work for 500 rows.
Over HTTP: `mtlrec serve RUN` in a subprocess; a second process sends one request after another
(one keep-alive connection) for ``--seconds`` and reports latency percentiles and requests/s.
Prints markdown tables and the machine's load average (other processes slow every number down).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONTEXT = ("device", "hour", "user_price_pref", "user_activity", "user_cat_clicks", "recent_categories")


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
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


def in_process(run: Path, seconds: float) -> list[tuple[str, int, dict[str, float]]]:
    import torch

    from mtlrec.serve.app import create_app

    torch.set_num_threads(1)
    service = create_app(run).state.service
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
    import torch

    from mtlrec.rank.lists import ranked_lists
    from mtlrec.serve.columns import ColumnEncoder

    n = len(body["candidates"])
    columns = service.candidate_columns(body["context"], body["candidates"])
    encoder = ColumnEncoder(service.predictor.encoder)
    batch = encoder.encode(columns, n)
    preds = service.predictor.score(columns, n)

    def forward() -> None:
        with torch.inference_mode():
            service.predictor.model(batch)

    steps = [
        ("- request values -> columns", lambda: service.candidate_columns(body["context"], body["candidates"])),
        ("- encode columns -> tensors", lambda: encoder.encode(columns, n)),
        ("- model forward", forward),
        ("- fusion + ranking", lambda: ranked_lists(preds, service.fuser, k=body["k"])),
    ]
    return [(what, n, percentiles(timed(fn, seconds / 2))) for what, fn in steps]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def over_http(run: Path, seconds: float) -> list[tuple[int, int, dict[str, float], float, int]]:
    """Start `mtlrec serve`, then one client process per request size."""
    import httpx

    from mtlrec.serve.predictor import Predictor

    columns = list(Predictor.load(run).encoder.schema.columns(labels=False))
    port = free_port()
    cli = "from mtlrec.cli.main import entry; entry()"
    server = subprocess.Popen(
        [sys.executable, "-c", cli, "serve", str(run), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in (1, 500):
                path = Path(tmp) / f"body{n}.json"
                path.write_text(json.dumps(bodies(columns, n)["recommend"]))
                args = [sys.executable, __file__, "--client", url, "--body", str(path), "--seconds", str(seconds)]
                stats = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
                out.append((n, path.stat().st_size, stats["latency"], stats["rps"], stats["requests"]))
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


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


def train_small(out: Path) -> Path:
    import torch

    from mtlrec.config import load_config
    from mtlrec.experiment import run_experiment

    torch.set_num_threads(1)
    overrides = ["data.synthetic.rows=20000", "train.epochs=1", "train.progress=false"]
    cfg = load_config(Path(__file__).parent.parent / "configs" / "synthetic.yaml", overrides)
    run_experiment(cfg, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train a small one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per measurement")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.body, args.seconds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_small(Path(tmp) / "run")
        from mtlrec.serve.predictor import Predictor

        model = Predictor.load(run).config.model.name
        print(f"model: {model}; cpus: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}\n")
        print("In process (torch threads 1), milliseconds:\n")
        print("| what | rows | p50 | p95 | p99 |\n|---|---|---|---|---|")
        for what, n, p in in_process(run, args.seconds):
            print(f"| {what} | {n} | {p['p50']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} |")
        print("\n('- ' rows: the steps of the recommend row above them, each timed alone)")
        print("\nOver HTTP (`mtlrec serve`, one client process, sequential requests), POST /v1/recommend, k=10:\n")
        print("| candidates | body kB | p50 ms | p95 ms | p99 ms | requests/s | requests |")
        print("|---|---|---|---|---|---|---|")
        for n, size, p, rps, count in over_http(run, args.seconds):
            print(f"| {n} | {size / 1000:.1f} | {p['p50']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} | {rps:.1f} | {count} |")
        print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
