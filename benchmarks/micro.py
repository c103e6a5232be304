"""Micro-measurements behind the choices in the training step (medians of interleaved turns):

    python benchmarks/micro.py [--rounds 15] [--threads 1]

1. ``unique`` of 40,960 skewed ids (one batch of 2048 x 20 fields) on 1 thread and on 2 threads:
   why the row-wise optimizer's index ops run on one thread (mtlrec.train.optim.one_thread);
2. Adam over the MMoE's 0.48M dense parameters, foreach vs fused;
3. forward + backward of the expert bank (4 experts [328 -> 256 -> 128], batch 2048): one batched
   product per layer (mtlrec.nn.Experts) vs the first layer as one [328, 1024] product.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def turns(variants: dict, rounds: int) -> dict[str, float]:
    """Median milliseconds of each variant, measured in turns."""
    for f in variants.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, f in variants.items():
            start = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def threads(n: int, f):
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            f()
        finally:
            torch.set_num_threads(before)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="for 2 and 3 (1 compares 1 and 2 threads itself)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} turns, milliseconds\n")

    ids = (1_000_000 * torch.rand(2048 * 20) ** 3).long()
    unique = lambda: torch.unique(ids, return_inverse=True)  # noqa: E731
    res = turns({"1 thread": threads(1, unique), "2 threads": threads(2, unique)}, args.rounds)
    print("unique of 40,960 ids: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))

    shapes = [(4, 328, 256), (4, 1, 256), (4, 256, 128), (4, 1, 128), (328, 4), (4,), (328, 4), (4,),
              (128, 64), (64,), (64, 1), (1,), (128, 64), (64,), (64, 1), (1,)]  # fmt: skip
    opts = {}
    for kind in ("foreach", "fused"):
        params = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opts[kind] = torch.optim.Adam(params, **{kind: True}).step
    res = turns(opts, args.rounds)
    print(f"Adam step, {sum(torch.Size(s).numel() for s in shapes):,} parameters: "
          + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))  # fmt: skip

    b, d_in, n, d1, d2 = 2048, 328, 4, 256, 128
    x = torch.randn(b, d_in, requires_grad=True)
    w1, b1 = torch.randn(n, d_in, d1, requires_grad=True), torch.randn(n, 1, d1, requires_grad=True)
    w2, b2 = torch.randn(n, d1, d2, requires_grad=True), torch.randn(n, 1, d2, requires_grad=True)
    grad = torch.randn(b, n, d2)

    def batched():
        h = torch.relu(torch.baddbmm(b1, x.unsqueeze(0).expand(n, b, d_in), w1))
        return torch.relu(torch.baddbmm(b2, h, w2)).transpose(0, 1)

    def first_as_one():
        h = torch.relu(torch.addmm(b1.reshape(1, n * d1), x, w1.transpose(0, 1).reshape(d_in, n * d1)))
        return torch.relu(torch.baddbmm(b2, h.view(b, n, d1).transpose(0, 1), w2)).transpose(0, 1)

    def fwd_bwd(f):
        def run():
            for p in (x, w1, b1, w2, b2):
                p.grad = None
            f().backward(grad)

        return run

    res = turns({"batched (Experts)": fwd_bwd(batched), "first layer as one mm": fwd_bwd(first_as_one)}, args.rounds)
    shown = ", ".join(f"{k} {v:.1f}" for k, v in res.items())
    print(f"expert bank fwd+bwd, {torch.get_num_threads()} threads: {shown}")


if __name__ == "__main__":
    main()
