"""Several processes against one on the benchmark shape: ``torchrun`` 2 processes x 1 thread next to
1 process x 2 threads and 1 x 1, and a projection of steps/s to 64 processes over a network.

    python benchmarks/ddp.py                                          # 300k rows, 2 rounds
    flock /tmp/measure.lock .venv/bin/python benchmarks/ddp.py --rows 200000 --updates rowwise,dense

1. The shape (``_shape.py``: 20 categorical fields, one with 1M ids, 8 numeric; tasks click and
   purchase on clicked rows) as one Parquet file in a temporary directory, and a config: MMoE (4
   experts [256, 128], towers [64], as speed.py's), one epoch, global batch 2048, 2% of the rows
   for validation and 2% for test (the vocabularies are what the train split holds).
2. ``mtlrec train`` of it, each variant in turn (``--repeats`` rounds; a run and its descendants
   are killed by their ids after ``--timeout``): A 1 process x 2 threads, B ``torch.distributed.run``
   2 processes x 1 thread (127.0.0.1, a free port), C 1 process x 1 thread; for each
   ``train.embedding_update`` in ``--updates``.
3. Per variant, from RUN/history.jsonl (rank 0's record of the last epoch): samples/s (best and
   median), epoch seconds (validation included: under torchrun each rank scores its share of the
   rows and the predictions are gathered), compute seconds per step (the epoch minus rank 0's time
   inside collectives, waits for the other rank included), the collectives' share of the epoch,
   bytes and collectives per step (validation's gathers included); the peak RSS of each torchrun
   worker (VmHWM, read every 0.2 s) or of the single process, and of the largest process of the
   run (wait4's ru_maxrss: the largest single one, the torchrun agent included).
4. A projection to 2..64 processes for each ``--bandwidth`` (a calculation, not a measurement; its
   formula is printed above it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import _shape  # noqa: E402
from _machine import cpu_line  # noqa: E402
from mtlrec.cli.table import markdown  # noqa: E402

VARIANTS = {  # name -> (processes, threads each)
    "A": (1, 2),
    "B": (2, 1),
    "C": (1, 1),
}
SIZES = (2, 4, 8, 16, 32, 64)  # processes in the projection


def write_inputs(rows: int, batch_size: int, epochs: int, where: Path) -> tuple[Path, np.ndarray]:
    """(the config, the rows' fused embedding ids [rows, fields]) for ``rows`` of the shape."""
    table = _shape.generate(rows, seed=1)
    pq.write_table(table, where / "shape.parquet")
    config = {
        "data": {"source": "file", "path": str(where / "shape.parquet"),
                 "split": {"method": "random", "valid": 0.02, "test": 0.02}},
        "schema": dataclasses.asdict(_shape.schema()),
        "model": {"name": "mmoe", "tower_dims": [64], "mmoe": _shape.MODEL_OPTIONS["mmoe"]},
        "train": {"epochs": epochs, "batch_size": batch_size, "progress": False, "conflict_every": 0},
    }  # fmt: skip
    (where / "ddp.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    offsets = np.cumsum([0, *_shape.CAT_SIZES[:-1]])
    ids = np.stack([table[c].to_numpy() + o for c, o in zip(_shape.cat_names(), offsets)], axis=1)
    return where / "ddp.yaml", ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, stack = [], [root]
    while stack:
        found.append(stack.pop())
        stack += children.get(found[-1], [])
    return found


def _rank_peak(pid: int) -> tuple[str, int] | None:
    """(its RANK, VmHWM in KiB) of a live torchrun worker; None for another process."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None
    rank = next((e[5:].decode() for e in env if e.startswith(b"RANK=")), None)
    return None if rank is None else (rank, int(hwm.split()[1]))


def run(cmd: list[str], log: Path, timeout: float) -> dict:
    """Run ``cmd`` (killed with its descendants after ``timeout`` s): {"peaks": {process: MB},
    "largest_mb", "wall_s"}; the peaks of torchrun's workers are read while they run (VmHWM), a
    single process's is wait4's ru_maxrss."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ranks: dict[str, int] = {}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        tree = _tree(proc.pid)
        if time.perf_counter() - start > timeout:
            for p in reversed(tree):  # torchrun's workers run in sessions of their own: each by its id
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            raise SystemExit(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}")
        ranks.update(seen for p in tree if (seen := _rank_peak(p)) is not None)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{log.read_text()[-3000:]}")
    peaks = {f"rank {r}": kb / 1024 for r, kb in sorted(ranks.items())} or {"process": usage.ru_maxrss / 1024}
    return {"peaks": peaks, "largest_mb": usage.ru_maxrss / 1024, "wall_s": wall}


def train(variant: str, update: str, config: Path, out: Path, timeout: float) -> dict:
    """One ``mtlrec train`` of ``config`` as ``variant``: the last epoch's record and the run's numbers."""
    processes, threads = VARIANTS[variant]
    cmd = [sys.executable]
    if processes > 1:
        cmd += ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
                "--master_addr", "127.0.0.1", "--master_port", str(free_port())]  # fmt: skip
    cmd += ["-m", "mtlrec", "train", str(config), "--out", str(out), "--overwrite", "--quiet", "--no-report",
            "--set", f"train.threads={threads}", "--set", f"train.embedding_update={update}"]  # fmt: skip
    measured = run(cmd, out.with_suffix(".log"), timeout)
    record = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()][-1]
    return {**measured, "record": record}


def dense_bytes(run_dir: Path, update: str) -> int:
    """Bytes of the dense gradients one step all-reduces: every float32 parameter outside the
    tables that row-wise Adam updates (the model built from the run, as the trainer builds it)."""
    from mtlrec.serve.predictor import Predictor
    from mtlrec.train.optim import embedding_tables

    model = Predictor.load(run_dir).model
    rowwise = {id(m.weight) for m in embedding_tables(model)} if update == "rowwise" else set()
    return 4 * sum(p.numel() for p in model.parameters() if id(p) not in rowwise)


def distinct_rows(ids: np.ndarray, rows: int, samples: int = 8) -> float:
    """Mean number of distinct embedding rows that ``rows`` random rows look up."""
    rng = np.random.default_rng(0)
    return statistics.mean(len(np.unique(ids[rng.choice(len(ids), rows, replace=False)])) for _ in range(samples))


def summary(runs: list[dict], steps: int) -> dict:
    """Medians (and the best samples/s) over a variant's repeats."""
    med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
    dist = lambda r: r["record"].get("distributed", {})  # noqa: E731
    return {
        "best": max(r["record"]["samples_per_s"] for r in runs),
        "median": med(lambda r: r["record"]["samples_per_s"]),
        "seconds": med(lambda r: r["record"]["seconds"]),
        "compute_step": med(lambda r: (r["record"]["seconds"] - dist(r).get("collective_seconds", 0.0)) / steps),
        "share": med(lambda r: dist(r).get("collective_seconds", 0.0) / r["record"]["seconds"]),
        "bytes_step": med(lambda r: dist(r).get("bytes", 0) / steps),
        "calls_step": med(lambda r: dist(r).get("collectives", 0) / steps),
        "peaks": {k: statistics.median(r["peaks"].get(k, 0.0) for r in runs) for k in runs[0]["peaks"]},
        "largest": med(lambda r: r["largest_mb"]),
        "wall": med(lambda r: r["wall_s"]),
    }


def projection(t1: float, dense: float, sparse2: float, gathers: float, distinct: dict[int, float],
               batch_size: int, bandwidth: float, latency: float) -> list[list]:  # fmt: skip
    """Rows of the projection table (see the formula ``main`` prints)."""
    rows = []
    for n in SIZES:
        compute = t1 / n
        reduce = 2 * (n - 1) / n * dense / bandwidth
        gather = (n - 1) * sparse2 * distinct[n] / distinct[2] / bandwidth
        wait = latency * (2 * 2 * (n - 1) + gathers * (n - 1))
        step = compute + reduce + gather + wait
        rows.append([n, f"{compute * 1e3:.1f}", f"{reduce * 1e3:.2f}", f"{gather * 1e3:.2f}", f"{wait * 1e3:.2f}",
                     f"{(reduce + gather + wait) / step:.0%}", f"{1 / step:,.1f}", f"{batch_size / step:,.0f}",
                     f"{t1 / step:.1f}"])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=2048, help="the global batch (all processes together)")
    parser.add_argument("--epochs", type=int, default=1, help="the tables use the last epoch's record")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every variant, in turns")
    parser.add_argument("--updates", default="rowwise", help="train.embedding_update values, comma-separated")
    parser.add_argument("--bandwidth", default="10,100", help="Gbit/s of the projected network, comma-separated")
    parser.add_argument("--latency", type=float, default=50.0, help="microseconds per ring hop of a collective")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one training run may take")
    args = parser.parse_args(argv)
    updates = [u.strip() for u in args.updates.split(",") if u.strip()]
    load = os.getloadavg()
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="ddp-bench-") as tmp:
        config, ids = write_inputs(args.rows, args.batch_size, args.epochs, Path(tmp))
        runs: dict[tuple[str, str], list[dict]] = {(u, v): [] for u in updates for v in VARIANTS}
        for r in range(args.repeats):
            for (update, variant), done in runs.items():
                done.append(train(variant, update, config, Path(tmp) / f"{update}-{variant}-{r}", args.timeout))
        dense = {u: dense_bytes(Path(tmp) / f"{u}-C-0", u) for u in updates}
        counts = json.loads((Path(tmp) / f"{updates[0]}-C-0" / "counts.json").read_text())["counts"]["c0"]
    train_rows, c0_ids = sum(counts.values()), len(counts)  # the train split's rows; its ids of the 1M field
    steps = -(-train_rows // args.batch_size)
    stats = {key: summary(r, steps) for key, r in runs.items()}
    distinct = {n: distinct_rows(ids, max(1, args.batch_size // n)) for n in SIZES}

    print(f"{cpu_line()}; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({time.perf_counter() - started:.0f} s)\n")  # fmt: skip
    print(f"command: python benchmarks/ddp.py {shlex.join(sys.argv[1:] if argv is None else argv)}\n")
    print(f"MMoE on the shape, {train_rows:,} training rows ({c0_ids:,} distinct ids of the 1M field), "
          f"global batch {args.batch_size:,} ({steps} steps), {args.epochs} epoch(s), {args.repeats} runs of each "
          "variant in turns; seconds are rank 0's epoch, validation of 2% of the rows included (under torchrun "
          "each rank scores its share; the gathered predictions count in the collectives and bytes). "
          "Compute = epoch minus rank 0's time in collectives (its waits for the other rank included). Peak RSS: "
          "each torchrun worker's VmHWM, read every 0.2 s, or the single process's ru_maxrss; largest: wait4's "
          "ru_maxrss, the largest single process of the run.\n")  # fmt: skip
    header = ["update", "processes x threads", "samples/s best", "samples/s median", "epoch s", "compute ms/step",
              "collectives % of epoch", "MB/step", "collectives/step", "peak RSS MB per process", "largest MB",
              "wall s"]  # fmt: skip
    rows = []
    for (update, variant), s in stats.items():
        n, t = VARIANTS[variant]
        peaks = " / ".join(f"{mb:,.0f}" for mb in s["peaks"].values())
        rows.append([update, f"{variant}: {n} x {t}", f"{s['best']:,.0f}", f"{s['median']:,.0f}", f"{s['seconds']:.1f}",
                     f"{s['compute_step'] * 1e3:.1f}", f"{s['share']:.1%}" if n > 1 else "-",
                     f"{s['bytes_step'] / 1e6:.2f}" if n > 1 else "-", f"{s['calls_step']:.1f}" if n > 1 else "-",
                     peaks, f"{s['largest']:,.0f}", f"{s['wall']:.1f}"])  # fmt: skip
    print(markdown(header, rows))
    for update in updates:
        a, b, c = (stats[update, v] for v in VARIANTS)
        print(f"\n{update}: samples/s (medians) 2 x 1 / 1 x 2 {b['median'] / a['median']:.2f}, 2 x 1 / 1 x 1 "
              f"{b['median'] / c['median']:.2f}; compute per step, 2 x 1 / (1 x 1 / 2): "
              f"{b['compute_step'] / (c['compute_step'] / 2):.2f}")  # fmt: skip
    for update in updates:
        b, t1 = stats[update, "B"], stats[update, "C"]["compute_step"]
        sparse2 = max(0.0, (b["bytes_step"] - dense[update]) / 2)
        gathers = max(0, round(b["calls_step"]) - 2)  # the calls beyond the 2 all-reduces: all_gathers
        print(f"\n### Projection, embedding_update {update}: a calculation, not a measurement\n")
        print(f"step(N) = t1 / N + 2 (N-1)/N x D / BW + (N-1) x S(N) / BW + a x (2 x 2 (N-1) + {gathers:.0f} (N-1))\n"
              f"  t1 = {t1 * 1e3:.1f} ms: 1 process x 1 thread, epoch seconds / steps (measured, C; "
              "validation included)\n"
              f"  D = {dense[update] / 1e6:.3f} MB: 4 bytes x the dense parameters (counted on the trained model), "
              f"one ring all-reduce\n"
              f"  S(N) = S(2) x distinct(batch/N) / distinct(batch/2): one rank's sparse gradient (rows and values), "
              f"all-gathered; S(2) = (measured bytes/step of variant B - D) / 2 = {sparse2 / 1e6:.3f} MB; "
              f"distinct(r) = embedding rows that r random rows look up (counted on the data: "
              + ", ".join(f"batch/{n}: {distinct[n]:,.0f}" for n in SIZES) + ")\n"
              f"  a = {args.latency:.0f} us per ring hop; per step 2 all-reduces (losses, dense gradients) and "
              f"{gathers:.0f} all_gathers\n"
              "  compute and communication do not overlap; compute is assumed to shrink as 1/N (optimistic: "
              "every rank still updates the union of the batch's rows and pays per-step overheads)\n")  # fmt: skip
        for gbit in (float(g) for g in args.bandwidth.split(",")):
            print(f"{gbit:g} Gbit/s:\n")
            print(markdown(["processes", "compute ms", "all-reduce ms", "all-gather ms", "latency ms",
                            "communication %", "steps/s", "samples/s", "speed-up over 1 x 1"],
                           projection(t1, dense[update], sparse2, gathers, distinct, args.batch_size,
                                      gbit * 1e9 / 8, args.latency * 1e-6)))  # fmt: skip
            print()


if __name__ == "__main__":
    main()
