"""The benchmark data shape and the measuring helpers shared by speed.py and peers.py.

Shape (issue 5): 20 categorical fields (one with 1M ids, 4 x 10k, 5 x 1k, 10 x 100), 8 numeric
columns, optionally sequence fields (ids from 10k, 0..10 per row), two binary tasks: ``click`` and
``purchase`` (purchase only after a click). Ids are integers ``0..size-1``, skewed towards small
ids (``size * u**3``), as already label-encoded logs are; labels come from a logistic model of
per-id effects so that a model has something to learn.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pyarrow as pa
import torch

from mtlrec.data.encode import Encoder
from mtlrec.spec import FeatureSpec, Schema, TaskSpec
from mtlrec.train.callbacks import Callback

CAT_SIZES = (1_000_000,) + (10_000,) * 4 + (1_000,) * 5 + (100,) * 10
N_NUMERIC = 8
SEQ_SIZE, SEQ_LEN = 10_000, 10


def cat_names() -> list[str]:
    return [f"c{i}" for i in range(len(CAT_SIZES))]


def generate(rows: int, *, n_seq: int = 0, seed: int = 0) -> pa.Table:
    """``rows`` impressions of the benchmark shape as an Arrow table (numpy-vectorised: 400k rows
    take about a second)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    click_logit = np.full(rows, -1.2)
    buy_logit = np.full(rows, -1.0)
    for name, size in zip(cat_names(), CAT_SIZES):
        ids = (size * rng.random(rows) ** 3).astype(np.int64)
        effect = rng.normal(0.0, 0.4, size)  # per-id effect on click; purchase shares half of it
        own = rng.normal(0.0, 0.4, size)
        click_logit += effect[ids] / 2
        buy_logit += (effect[ids] + own[ids]) / 3
        cols[name] = pa.array(ids)
    dense = rng.normal(size=(rows, N_NUMERIC))
    w = rng.normal(0.0, 0.3, N_NUMERIC)
    click_logit += dense @ w
    buy_logit -= dense @ w / 2
    for j in range(N_NUMERIC):
        cols[f"n{j}"] = pa.array(dense[:, j])
    for s in range(n_seq):
        lengths = rng.integers(0, SEQ_LEN + 1, rows)
        values = (SEQ_SIZE * rng.random(int(lengths.sum())) ** 2).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        cols[f"s{s}"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    click = rng.random(rows) < 1 / (1 + np.exp(-click_logit))
    purchase = click & (rng.random(rows) < 1 / (1 + np.exp(-buy_logit)))
    cols["click"] = pa.array(click.astype(np.int8))
    cols["purchase"] = pa.array(purchase.astype(np.int8))
    return pa.table(cols)


def schema(*, n_seq: int = 0, post_click: bool = True) -> Schema:
    """The shape's schema; ``post_click``: purchase is learned on clicked rows (``where: click``),
    else on all rows (the peers have no sample spaces)."""
    feats = [FeatureSpec(name=n, kind="categorical") for n in cat_names()]
    feats += [FeatureSpec(name=f"n{j}", kind="numeric") for j in range(N_NUMERIC)]
    feats += [FeatureSpec(name=f"s{s}", kind="sequence", max_len=SEQ_LEN) for s in range(n_seq)]
    metrics = ("auc", "logloss")
    tasks = (
        TaskSpec(name="click", kind="binary", metrics=metrics),
        TaskSpec(name="purchase", kind="binary", metrics=metrics, where="click" if post_click else None),
    )
    return Schema(features=tuple(feats), tasks=tasks)


def encoder(table: pa.Table, *, n_seq: int = 0, post_click: bool = True) -> Encoder:
    """An encoder fitted on ``table`` whose vocabularies hold every id of the shape (as the peers'
    tables do: ``vocabulary_size`` = the field's size), so every model has a 1M-row field."""
    enc = Encoder(schema(n_seq=n_seq, post_click=post_click)).fit(table)
    for name, size in zip(cat_names(), CAT_SIZES):
        enc.vocabs_[name] = [str(i) for i in range(size)]
    for s in range(n_seq):
        enc.vocabs_[f"s{s}"] = [str(i) for i in range(SEQ_SIZE)]
    return enc


# -- measuring --------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """The process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def matmul_gflops(
    dtype: torch.dtype = torch.float32, *, n: int = 1024, seconds: float = 1.0, device: str = "cpu"
) -> float:
    """This machine's measured matrix-product rate (GFLOP/s) at the current torch thread count, or
    the GPU's: the best of repeated [n, n] x [n, n] products (each waited for on a GPU)."""
    a, b = torch.randn(n, n).to(device, dtype), torch.randn(n, n).to(device, dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    torch.mm(a, b)
    sync()
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def linear_flops(model: torch.nn.Module) -> float:
    """Matrix-product FLOPs per sample of one forward pass: 2 x in x out per nn.Linear, and
    2 x n x in x out per expert bank (``Experts``: n experts' [in, out] weights in one tensor).
    Training costs about 3x this (forward, and backward for inputs and weights)."""
    from mtlrec.nn import Experts

    flops = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            flops += 2 * m.in_features * m.out_features
        elif isinstance(m, Experts):
            flops += sum(2 * w.numel() for w in m.weights)
    return flops


# -- running mtlrec on the shape --------------------------------------------------------------------
MODEL_OPTIONS = {  # the issue's MMoE: 4 experts [256, 128], towers [64]; the other models' defaults
    "mmoe": {"n_experts": 4, "expert_dims": [256, 128]},
    "omoe": {"n_experts": 4, "expert_dims": [256, 128]},
}


def build(name: str, layout, tasks):
    """A registered model with the benchmark's hyperparameters."""
    from mtlrec.config import ModelConfig
    from mtlrec.models import build_model

    cfg = ModelConfig.model_validate({"name": name, "tower_dims": [64], name: MODEL_OPTIONS.get(name, {})})
    return build_model(cfg, layout, tasks)


class StepClock(Callback):
    """A trainer callback that notes when each step ended (for steady-state throughput); ``sync``:
    wait for the GPU's queued work first (its kernels run after the Python that launched them)."""

    def __init__(self, sync: bool = False) -> None:
        self.times: list[float] = []
        self.sync = sync

    def on_step(self, trainer, step, losses, stats, batch) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def rate(self, batch_size: int, warmup: int) -> float:
        """Samples per second over the steps after the first ``warmup`` (the last, possibly
        partial batch excluded)."""
        t = self.times[warmup:-1]
        return (len(t) - 1) * batch_size / (t[-1] - t[0])


def train_config(**kw):
    from mtlrec.config import TrainConfig

    return TrainConfig(epochs=1, progress=False, conflict_every=0, **kw)


def fit(model, train, valid, cfg, callbacks=()) -> None:
    """One ``Trainer.fit`` with the default weighting (static), as ``mtlrec train`` runs it."""
    from mtlrec.config import WeightingConfig
    from mtlrec.train.trainer import Trainer
    from mtlrec.weighting import build_weighting

    weighting = build_weighting(WeightingConfig(), model.loss_tasks)
    Trainer(model, weighting, cfg, list(callbacks)).fit(train, valid)


def rows(data, index: slice):
    """Rows of an EncodedData, as EncodedData."""
    from mtlrec.data.batches import EncodedData

    return EncodedData(**vars(data.take(index)), groups=None, targets=dict(data.targets))
