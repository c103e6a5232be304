"""Training and inference speed of every model on the benchmark shape, as a markdown table.

    python benchmarks/speed.py                                   # every model, batch 512/2048/8192
    python benchmarks/speed.py --models mmoe --batch-sizes 2048 --precision bfloat16 --steps 200
    python benchmarks/speed.py --device cuda --batch-sizes 2048,8192,32768,65536   # on a GPU (gpu.sh)

Data (benchmarks/_shape.py): 20 categorical fields (one with 1M ids, 4 x 10k, 5 x 1k, 10 x 100),
8 numeric, 1 sequence field (10k ids, up to 10 per row), embedding dim 16, tasks click and
purchase (on clicked rows). Per model and batch size, in a fresh process (so that the peak memory
is its own, data included): training samples/s in the steady state (the steps after the warm-up,
data already encoded), the model's matrix-product MFLOP per training sample (3 x the forward
pass's), the fraction of this machine's measured matmul rate that this reaches (roofline %),
``predict`` rows/s (float32, batches of 8192) and peak RSS. With ``--device cuda`` every row is
measured in this process (the data generated and encoded once, for the largest batch size), the
steps waited for on the GPU, the roofline against the GPU's measured matmul rate, and the peak GPU
memory of each row (torch's allocator) beside the process's peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

import _shape  # noqa: E402
from _machine import cpu_line, gpu_line  # noqa: E402


VALID_ROWS = 2_000


def shape_data(rows: int):
    """(the encoder, ``rows`` encoded rows of the benchmark shape)."""
    table = _shape.generate(rows, n_seq=1, seed=1)
    enc = _shape.encoder(table, n_seq=1)
    return enc, enc.transform(table)


def measure(
    name: str, batch_size: int, steps: int, warmup: int, precision: str, update: str, threads: int,
    device: str = "cpu", data=None,
) -> dict:  # fmt: skip
    """One model x batch size (on the CPU: run in a child process); ``data``: ``shape_data`` of at
    least ``batch_size * (steps + 1) + VALID_ROWS`` rows (default: made here)."""
    torch.set_num_threads(threads)
    from mtlrec.evaluation import predict

    n_train = batch_size * (steps + 1)
    enc, encoded = data if data is not None else shape_data(n_train + VALID_ROWS)
    train, valid = _shape.rows(encoded, slice(0, n_train)), _shape.rows(encoded, slice(n_train, n_train + VALID_ROWS))
    gpu = torch.device(device).type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    model = _shape.build(name, enc.layout(), enc.schema.tasks)
    clock = _shape.StepClock(sync=gpu)
    cfg = _shape.train_config(batch_size=batch_size, precision=precision, embedding_update=update, device=device)
    _shape.fit(model, train, valid, cfg, [clock])
    part = _shape.rows(train, slice(0, 100_000))
    start = time.perf_counter()
    predict(model, part, 8192)  # (the predictions come back to the CPU: waited for)
    predict_s = time.perf_counter() - start
    return {
        "samples_per_s": clock.rate(batch_size, warmup),
        "predict_rows_per_s": len(part) / predict_s,
        "train_mflop": 3 * _shape.linear_flops(model) / 1e6,
        "peak_rss_mb": _shape.peak_rss_mb(),
        **({"peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20} if gpu else {}),
    }


def stepping(name: str, batch_size: int, n_batches: int, settings: dict):
    """(a Trainer of model ``name`` ready for ``train_step`` after 3 warm-up steps, the batches)."""
    from mtlrec.config import WeightingConfig
    from mtlrec.train.optim import Optimizers
    from mtlrec.train.trainer import Trainer
    from mtlrec.weighting import build_weighting

    table = _shape.generate(batch_size * n_batches, n_seq=1, seed=1)
    enc = _shape.encoder(table, n_seq=1)
    data = enc.transform(table)
    batches = list(data.batches(batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    model = _shape.build(name, enc.layout(), enc.schema.tasks)
    cfg = _shape.train_config(batch_size=batch_size, **settings)
    trainer = Trainer(model, build_weighting(WeightingConfig(), model.loss_tasks), cfg)
    trainer.optimizer = Optimizers(model, [], cfg)  # what fit() opens
    model.train()
    for b in batches[:3]:  # warm-up
        trainer.train_step(b)
    return trainer, batches


def compare(name: str, batch_size: int, key: str, values: list, rounds: int, burst: int) -> dict[str, list[float]]:
    """Training samples/s of one model under each ``train.<key>`` value, measured in turns (bursts
    of ``burst`` steps, ``rounds`` times) in this process, so that load from other processes hits
    every variant alike."""
    trainers = {}
    for value in values:
        trainers[str(value)], batches = stepping(name, batch_size, burst * 2, {key: value})
    rates: dict[str, list[float]] = {v: [] for v in trainers}
    for r in range(rounds):
        for v, trainer in trainers.items():
            start = time.perf_counter()
            for i in range(burst):
                trainer.train_step(batches[(r * burst + i) % len(batches)])
            rates[v].append(burst * batch_size / (time.perf_counter() - start))
    return rates


def _child(args: tuple) -> dict:
    return measure(*args)


def main(argv: list[str] | None = None) -> None:
    from mtlrec.models import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS.names()), help="comma-separated (default: all)")
    parser.add_argument("--batch-sizes", default="512,2048,8192")
    parser.add_argument("--steps", type=int, default=60, help="training steps per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the rate")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (train.device)")
    parser.add_argument("--embedding-update", choices=("rowwise", "dense"), default="rowwise")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", metavar="KEY=A,B", help="train.KEY values side by side, in turns, in one "
                        "process (first model, first batch size), e.g. embedding_update=dense,rowwise")
    parser.add_argument("--rounds", type=int, default=7, help="with --compare: turns per value")
    parser.add_argument("--burst", type=int, default=5, help="with --compare: steps per turn")
    parser.add_argument("--profile", action="store_true", help="the torch profiler's op table over --burst "
                        "steps of the first model and batch size (after 3 warm-up steps)")
    args = parser.parse_args(argv)
    if args.compare:
        return _print_comparison(args)
    if args.profile:
        return _print_profile(args)
    if args.steps <= args.warmup + 2:
        parser.error("--steps must exceed --warmup by at least 3")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    from mtlrec.device import resolve_device

    device = str(resolve_device(args.device, key="--device"))
    gpu = device.startswith("cuda")
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bfloat16" else torch.float32
    rate = _shape.matmul_gflops(dtype, n=8192 if gpu else 1024, device=device)
    print(cpu_line())
    if gpu:
        print(gpu_line(torch.device(device)))
    print(f"{device}, {args.precision}, {args.threads} threads, {args.steps} steps ({args.warmup} warm-up), "
          f"embedding update {args.embedding_update}; measured {args.precision} matmul rate "
          f"{rate:.1f} GFLOP/s; load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| model | batch | train samples/s | MFLOP/sample (train) | roofline % | predict rows/s | peak RSS MB |"
          + (" peak GPU MB |" if gpu else ""))  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpu else ""))
    ctx = multiprocessing.get_context("spawn")
    data = shape_data(max(sizes) * (args.steps + 1) + VALID_ROWS) if gpu else None  # once, for every row
    for name in models:
        for bs in sizes:
            job = (name, bs, args.steps, args.warmup, args.precision, args.embedding_update, args.threads, device)
            if gpu:  # in this process (GPU memory is measured per row)
                r = measure(*job, data=data)
            else:
                with ctx.Pool(1) as pool:  # a fresh process per row: its own peak memory
                    r = pool.apply(_child, (job,))
            roof = 100 * r["samples_per_s"] * r["train_mflop"] / 1e3 / rate
            print(f"| {name} | {bs} | {r['samples_per_s']:,.0f} | {r['train_mflop']:.2f} | {roof:.0f} | "
                  f"{r['predict_rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} |"
                  + (f" {r['peak_gpu_mb']:,.0f} |" if gpu else ""), flush=True)  # fmt: skip


def _print_profile(args: argparse.Namespace) -> None:
    import torch.profiler as tp

    name, bs = args.models.split(",")[0], int(args.batch_sizes.split(",")[0])
    torch.set_num_threads(args.threads)
    trainer, batches = stepping(name, bs, args.burst + 3, {"precision": args.precision})
    with tp.profile(activities=[tp.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for b in batches[3 : 3 + args.burst]:
            trainer.train_step(b)
        ms = (time.perf_counter() - start) / args.burst * 1e3
    print(f"{name}, batch {bs}, {args.threads} threads: {ms:.1f} ms a step under the profiler; "
          f"load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def _print_comparison(args: argparse.Namespace) -> None:
    import statistics

    import yaml

    from mtlrec.config import TrainConfig

    key, _, text = args.compare.partition("=")
    if key not in TrainConfig.model_fields or not text:
        raise SystemExit(f"error: --compare {args.compare!r}: expected KEY=A,B with KEY a train setting")
    values = [yaml.safe_load(v) for v in text.split(",")]
    name, bs = args.models.split(",")[0], int(args.batch_sizes.split(",")[0])
    torch.set_num_threads(args.threads)
    rates = compare(name, bs, key, values, args.rounds, args.burst)
    print(f"{name}, batch {bs}, {args.threads} threads, {args.rounds} turns of {args.burst} steps per value; "
          f"load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print(f"| train.{key} | samples/s (median) | min | max | vs {values[0]} |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(next(iter(rates.values())))
    for v, r in rates.items():
        med = statistics.median(r)
        print(f"| {v} | {med:,.0f} | {min(r):,.0f} | {max(r):,.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
