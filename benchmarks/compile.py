"""torch.compile against eager mode: training samples/s of the benchmark MMoE (batch 2048), with
row-wise and dense embedding updates, measured in turns in one process (markdown table).

    python benchmarks/compile.py [--threads 2] [--rounds 6] [--burst 4]

The model's forward is compiled (inductor, the default backend); the optimizer steps stay eager.
The gates count their training rows in a Python int, which torch.compile treats as a constant of
the module and would recompile for on every step, so such ints are made dynamic here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

import speed  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--burst", type=int, default=4, help="steps per variant per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch._dynamo.config.allow_unspec_int_on_nn_module = True

    variants = {}
    for update in ("rowwise", "dense"):
        for compiled in (False, True):
            trainer, batches = speed.stepping("mmoe", args.batch_size, args.burst * 2, {"embedding_update": update})
            if compiled:
                trainer.model.forward = torch.compile(trainer.model.forward)
                start = time.perf_counter()
                for b in batches[:3]:
                    trainer.train_step(b)
                print(f"{update}: compiling and 3 steps took {time.perf_counter() - start:.1f} s", flush=True)
            variants[(update, "compiled" if compiled else "eager")] = (trainer, batches)

    rates: dict[tuple[str, str], list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for key, (trainer, batches) in variants.items():
            start = time.perf_counter()
            for i in range(args.burst):
                trainer.train_step(batches[(r * args.burst + i) % len(batches)])
            rates[key].append(args.burst * args.batch_size / (time.perf_counter() - start))

    print(f"\nmmoe, batch {args.batch_size}, {args.threads} threads, {args.rounds} rounds of {args.burst} steps")
    print("\n| embedding update | forward | samples/s (median) | range |\n|---|---|---:|---|")
    for (update, mode), values in rates.items():
        print(f"| {update} | {mode} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |")


if __name__ == "__main__":
    main()
