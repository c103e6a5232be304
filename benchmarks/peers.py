"""mtlrec's MMoE next to torch-rechub's and DeepCTR-Torch's on the same data, in one run.

    PYTHONPATH=src /work/peers-venv/bin/python benchmarks/peers.py              # 400k rows
    python benchmarks/peers.py --rows 100000 --libs mtlrec,plain                # no peers needed

The peers live in their own venv (they pin other versions of numpy/pandas/scikit-learn):

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.13.0          # first, so that nothing upgrades it
    /work/peers-venv/bin/pip install torch-rechub==0.9.0 deepctr-torch==0.3.0 requests \\
        pyarrow pyyaml pydantic safetensors                   # deepctr-torch imports requests undeclared

Data (benchmarks/_shape.py): 20 categorical fields (one with 1M ids, 4 x 10k, 5 x 1k, 10 x 100),
8 numeric, embedding dim 16, tasks click and purchase (both on every row: the peers have no sample
spaces). Model: MMoE, 4 experts [256, 128], one softmax gate per task (no hidden layer), towers
[64], Adam lr 1e-3 with no weight decay or L2, batch 2048. Timed: one epoch including each
library's own data loading from label-encoded columns: mtlrec's Encoder.transform of the Arrow
table and its batching; torch-rechub's DataGenerator / DataLoader; DeepCTR-Torch's fit() (which
builds its own loader). ``plain``: a hand-written PyTorch loop over pre-built tensors (one fused
nn.Embedding with sparse gradients and SparseAdam, per-expert nn.Linear), a reference for what
simple PyTorch reaches. Models are built before the clock starts, and torch's one-time import of
torch._dynamo (on the first optimizer a process makes, ~1.4 s) is done before any clock. Printed:
wall seconds (median over rounds), samples/s, and the process's CPU seconds over the same span:
with other processes on the machine wall time inflates, CPU time (at --threads 1) much less.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import _shape  # noqa: E402

EXPERTS, EXPERT_DIMS, TOWER, DIM, LR = 4, (256, 128), (64,), 16, 1e-3
INSTALL = ("pip install torch==2.13.0, then torch-rechub==0.9.0 deepctr-torch==0.3.0 requests into a "
           "separate venv (see this file's docstring)")  # fmt: skip


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) since ``start``. Under load from other processes
    wall time inflates; with 1 thread the CPU time much less."""
    return time.perf_counter() - start[0], time.process_time() - start[1]


def columns(table) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The label-encoded inputs the peers take: {column: array} and labels [N, 2]."""
    x = {c: table[c].to_numpy() for c in _shape.cat_names()}
    x.update({f"n{j}": table[f"n{j}"].to_numpy().astype(np.float32) for j in range(_shape.N_NUMERIC)})
    y = np.stack([table["click"].to_numpy(), table["purchase"].to_numpy()], 1).astype(np.float32)
    return x, y


# -- the libraries ----------------------------------------------------------------------------------
def run_mtlrec(table, batch_size: int, precision: str = "float32") -> tuple[float, float]:
    enc = _shape.encoder(table, post_click=False)  # vocabularies of every id, as the peers' sizes
    torch.manual_seed(0)
    model = _shape.build("mmoe", enc.layout(), enc.schema.tasks)
    extra = {"precision": precision} if precision != "float32" else {}  # (runs on older mtlrec too)
    cfg = _shape.train_config(batch_size=batch_size, lr=LR, **extra)
    start = clock()
    data = enc.transform(table)  # the first transform also builds the integer index of each vocabulary
    _shape.fit(model, data, _shape.rows(data, slice(0, 2_000)), cfg)  # batching, one epoch, validation
    return since(start)


class _PlainMMoE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum(_shape.CAT_SIZES)[:-1]]))
        self.table = nn.Embedding(sum(_shape.CAT_SIZES), DIM, sparse=True)
        d = len(_shape.CAT_SIZES) * DIM + _shape.N_NUMERIC

        def mlp(dims, width):
            layers = []
            for out in dims:
                layers += [nn.Linear(width, out), nn.ReLU()]
                width = out
            return nn.Sequential(*layers)

        self.experts = nn.ModuleList(mlp(EXPERT_DIMS, d) for _ in range(EXPERTS))
        self.gates = nn.ModuleList(nn.Linear(d, EXPERTS) for _ in range(2))
        tower = lambda: nn.Sequential(mlp(TOWER, EXPERT_DIMS[-1]), nn.Linear(TOWER[-1], 1))  # noqa: E731
        self.towers = nn.ModuleList(tower() for _ in range(2))

    def forward(self, ids, dense):
        x = torch.cat([self.table(ids + self.offsets).flatten(1), dense], 1)
        h = torch.stack([e(x) for e in self.experts], 1)  # [B, E, D]
        mixed = [(torch.softmax(g(x), -1).unsqueeze(-1) * h).sum(1) for g in self.gates]  # per task [B, D]
        return torch.cat([t(m) for t, m in zip(self.towers, mixed)], 1)


def run_plain(table, batch_size: int) -> tuple[float, float]:
    x, y = columns(table)
    ids = torch.from_numpy(np.stack([x[c] for c in _shape.cat_names()], 1))
    dense = torch.from_numpy(np.stack([x[f"n{j}"] for j in range(_shape.N_NUMERIC)], 1))
    labels = torch.from_numpy(y)
    torch.manual_seed(0)
    model = _PlainMMoE()
    sparse_opt = torch.optim.SparseAdam([model.table.weight], lr=LR)
    dense_opt = torch.optim.Adam([p for n, p in model.named_parameters() if n != "table.weight"], lr=LR)
    start = clock()
    order = torch.randperm(len(labels))
    for i in range(0, len(order), batch_size):
        b = order[i : i + batch_size]
        sparse_opt.zero_grad()
        dense_opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(ids[b], dense[b]), labels[b]).backward()
        sparse_opt.step()
        dense_opt.step()
    return since(start)


def run_rechub(table, batch_size: int) -> tuple[float, float]:
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator

    x, y = columns(table)
    features = [SparseFeature(c, vocab_size=s, embed_dim=DIM) for c, s in zip(_shape.cat_names(), _shape.CAT_SIZES)]
    features += [DenseFeature(f"n{j}") for j in range(_shape.N_NUMERIC)]
    torch.manual_seed(0)
    model = MMOE(features, ["classification"] * 2, EXPERTS, {"dims": list(EXPERT_DIMS)}, [{"dims": list(TOWER)}] * 2)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = MTLTrainer(model, task_types=["classification"] * 2, optimizer_params={"lr": LR, "weight_decay": 0.0},
                             n_epoch=1, device="cpu", model_path=tmp)  # fmt: skip
        small = ({k: v[:10] for k, v in x.items()}, y[:10])
        start = clock()
        train, _, _ = DataGenerator(x, y).generate_dataloader(*small, *small, batch_size=batch_size)
        trainer.train_one_epoch(train)
        return since(start)


def run_deepctr(table, batch_size: int) -> tuple[float, float]:
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE

    x, y = columns(table)
    sizes = zip(_shape.cat_names(), _shape.CAT_SIZES)
    features = [SparseFeat(c, vocabulary_size=s, embedding_dim=DIM) for c, s in sizes]
    features += [DenseFeat(f"n{j}", 1) for j in range(_shape.N_NUMERIC)]
    model = MMOE(features, num_experts=EXPERTS, expert_dnn_hidden_units=EXPERT_DIMS, gate_dnn_hidden_units=(),
                 tower_dnn_hidden_units=TOWER, l2_reg_linear=0, l2_reg_embedding=0, l2_reg_dnn=0,
                 task_types=("binary", "binary"), task_names=("click", "purchase"), device="cpu")  # fmt: skip
    model.compile(torch.optim.Adam(model.parameters(), lr=LR), loss=["binary_crossentropy"] * 2)
    start = clock()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return since(start)


RUNNERS = {"mtlrec": run_mtlrec, "plain": run_plain, "torch-rechub": run_rechub, "deepctr-torch": run_deepctr}
MODULES = {"torch-rechub": "torch_rechub", "deepctr-torch": "deepctr_torch"}


def importable(lib: str) -> bool:
    import importlib.util

    return lib not in MODULES or importlib.util.find_spec(MODULES[lib]) is not None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--libs", default=",".join(RUNNERS), help=f"comma-separated from {', '.join(RUNNERS)}")
    parser.add_argument("--bfloat16", action="store_true", help="also mtlrec with train.precision: bfloat16")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the libraries (interleaved); medians")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    unknown = [lib for lib in libs if lib not in RUNNERS]
    if unknown:
        parser.error(f"--libs: unknown {', '.join(unknown)}; expected some of {', '.join(RUNNERS)}")
    for lib in [lib for lib in libs if not importable(lib)]:
        print(f"{lib}: not importable here, left out ({INSTALL})")
        libs.remove(lib)
    rows = [(lib, lambda t, lib=lib: RUNNERS[lib](t, args.batch_size)) for lib in libs]
    if args.bfloat16:
        rows.insert(1, ("mtlrec bfloat16", lambda t: run_mtlrec(t, args.batch_size, "bfloat16")))

    table = _shape.generate(args.rows, seed=0)
    # torch imports torch._dynamo on the first optimizer of a process (~1.4 s): once, before any clock
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    seconds: dict[str, list[float]] = {name: [] for name, _ in rows}
    cpu: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(args.repeats):
        for name, run in rows:
            wall, used = run(table)
            seconds[name].append(wall)
            cpu[name].append(used)
            print(f"  {name}: {seconds[name][-1]:.1f} s", file=sys.stderr, flush=True)

    wall = {name: float(np.median(s)) for name, s in seconds.items()}
    used = {name: float(np.median(s)) for name, s in cpu.items()}
    print(f"\n{args.rows:,} rows, batch {args.batch_size}, {args.threads} threads, {args.repeats} round(s), "
          f"torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| library | epoch s | samples/s | mtlrec speed-up | CPU s | mtlrec speed-up by CPU s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in wall:
        up = f"{wall[name] / wall['mtlrec']:.2f}" if "mtlrec" in wall else "-"
        up_cpu = f"{used[name] / used['mtlrec']:.2f}" if "mtlrec" in used else "-"
        print(f"| {name} | {wall[name]:.1f} | {args.rows / wall[name]:,.0f} | {up} | {used[name]:.1f} | {up_cpu} |")

if __name__ == "__main__":
    main()
