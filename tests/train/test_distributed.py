"""Several processes train the model one process would (distributed.py).

The collectives are checked in two gloo processes on a file store (no port) against the same
computation on all rows in one process, with a task absent from one rank's rows and a task absent
from every row. The whole command is checked under torchrun (2 processes on the CPU, a free port on
127.0.0.1): the 2-process run equals the 1-process run (static: weights to 1e-5; MGDA and Nash-MTL:
the same task weights), in memory and streamed; killed with SIGKILL and resumed, it ends as the
uninterrupted 2-process run; and its run directory exports and serves like any other."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtlrec.artifacts import load_tensors, read_history, read_json
from mtlrec.cli.main import main
from mtlrec.config import ExperimentConfig
from mtlrec.data.batches import EncodedData
from mtlrec.data.encode import Encoder
from mtlrec.data.synthetic import default_schema, simulate
from mtlrec.distributed import SINGLE, Shard
from mtlrec.experiment import run_experiment
from mtlrec.report import write_report
from mtlrec.models import MODELS, build_model
from mtlrec.train.checkpoints import latest_checkpoint, load_checkpoint
from mtlrec.train.trainer import training_losses

TIMEOUT = 180  # seconds for two processes of a test
LOOPBACK = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}  # their gloo connections on 127.0.0.1 (as conftest's torchrun)


# -- rows of a shard -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_a_shard_takes_every_size_th_position_and_numbers_its_own(size):
    for rank in range(size):
        shard = Shard(rank, size)
        for start in range(0, 7):
            for stop in range(start, 20):
                mine = [p for p in range(start, stop) if p % size == rank]
                assert shard.count(start, stop) == len(mine)
                positions = torch.randperm(stop - start) + start
                want = [mine.index(p) for p in positions.tolist() if p % size == rank]
                assert shard.local(positions, start).tolist() == want
    shards = [Shard(r, size).mine(torch.arange(11)).tolist() for r in range(size)]
    assert sorted(sum(shards, [])) == list(range(11))  # every row once


def test_one_process_changes_nothing():
    losses = {"a": torch.tensor(0.5, requires_grad=True)}
    assert SINGLE.global_losses(losses, torch.tensor([3])) is losses
    x = torch.ones(3)
    assert SINGLE.sum(x) is x and SINGLE.agree({"k": 1}) == {"k": 1}


# -- the collectives, in two processes ---------------------------------------------------------------
X = torch.arange(24, dtype=torch.float32).reshape(8, 3).sin()
Y = torch.arange(8, dtype=torch.float32).cos()
IDS = torch.tensor([[1, 2], [2, 3], [4, 4], [1, 9], [0, 5], [5, 6], [7, 7], [8, 1]])
MASKS = {
    "a": torch.ones(8, dtype=torch.bool),  # every row
    "b": torch.tensor([1, 0, 1, 0, 1, 0, 0, 0], dtype=torch.bool),  # rank 0's rows only
    "c": torch.zeros(8, dtype=torch.bool),  # no row
}
WEIGHTS = {"a": 1.0, "b": 0.5, "c": 2.0}

CHILD = r"""
import json, sys, torch, torch.distributed as dist
sys.path.insert(0, sys.argv[4])
from test_distributed import IDS, MASKS, WEIGHTS, X, Y, forward, scored
from mtlrec.distributed import World
from mtlrec.weighting._grads import global_gram
torch.set_num_threads(1)
rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
world = World(rank, 2)
rows = torch.arange(8)[rank::2]
torch.manual_seed(0)
w = torch.nn.Parameter(torch.linspace(-1, 1, 3)); emb = torch.nn.Embedding(10, 2, sparse=True)
unused = torch.nn.Parameter(torch.zeros(2))
pred, local = forward(w, emb, rows)
counts = torch.stack([MASKS[t][rows].sum() for t in local])
losses = world.global_losses(local, counts)
mats = {on: torch.stack([torch.autograd.grad(losses[t], x, retain_graph=True)[0].reshape(-1) for t in losses])
        for on, x in (("parameters", w), ("representation", pred))}
sum(WEIGHTS[t] * losses[t] for t in losses).backward()
world.average_gradients([w, emb.weight, unused])
gathered = world.gather(torch.arange(rank + 2))
result = {"values": {t: float(v) for t, v in losses.items()}, "w": w.grad.tolist(),
          "emb": emb.weight.grad.to_dense().tolist(), "unused": unused.grad is None,
          "gram": {on: global_gram(m, on, world).tolist() for on, m in mats.items()},
          "agree": world.agree({"rank": rank}), "gathered": [g.tolist() for g in gathered],
          "scored": scored(world)}
open(out, "w").write(json.dumps(result))
dist.barrier()  # no process tears the group down while the other still reads from it
dist.destroy_process_group()
"""


def forward(w, emb, rows):
    """(predictions [R], {task: masked mean squared error}) of ``rows``."""
    pred = X[rows] @ w + emb(IDS[rows]).sum((1, 2))
    sq = (pred - Y[rows]) ** 2
    masks = {t: m[rows].float() for t, m in MASKS.items()}
    return pred, {t: (sq * m).sum() / m.sum().clamp_min(1) for t, m in masks.items()}


def scored(world) -> dict:
    """Metrics and predictions of an untrained MMoE on 997 rows (a number no world size divides),
    every process scoring its rows (evaluation.score_split)."""
    from mtlrec.evaluation import score_split

    table = simulate(rows=997, users=100, items=50, seed=5)
    encoder = Encoder(default_schema()).fit(table)
    cfg = ExperimentConfig.model_validate({"model": {"name": "mmoe", "embedding_dim": 4, "tower_dims": [8]}})
    torch.manual_seed(0)
    model = build_model(cfg.model, encoder.layout(), encoder.schema.tasks)
    got = score_split(model, encoder.transform(table), 128, table, world=world)
    metrics, oracle = got.evaluate(model)
    return {"metrics": metrics, "oracle": oracle, "click": got.preds["click"].tolist()}


def test_two_processes_reduce_losses_gradients_and_grams_as_one_process_would(tmp_path):
    here = str(Path(__file__).parent)
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(r), str(tmp_path / "store"), str(tmp_path / f"{r}.json"),
                          here], env=LOOPBACK)  # fmt: skip
        for r in range(2)
    ]
    for child in children:
        assert child.wait(timeout=TIMEOUT) == 0
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]

    torch.manual_seed(0)  # the same parameters, all 8 rows in one process
    w = torch.nn.Parameter(torch.linspace(-1, 1, 3))
    emb = torch.nn.Embedding(10, 2, sparse=True)
    pred, losses = forward(w, emb, torch.arange(8))
    grams = {}
    for on, x in (("parameters", w), ("representation", pred)):
        g = torch.stack([torch.autograd.grad(losses[t], x, retain_graph=True)[0].reshape(-1) for t in losses])
        grams[on] = (g.double() @ g.double().T).tolist()
    sum(WEIGHTS[t] * losses[t] for t in losses).backward()

    for r in got:  # every rank holds the one-process answer
        assert r["values"] == pytest.approx({t: float(v.detach()) for t, v in losses.items()}, abs=1e-6)
        assert r["values"]["c"] == 0.0  # a task with no row anywhere stays absent
        np.testing.assert_allclose(r["w"], w.grad.numpy(), atol=1e-6)
        np.testing.assert_allclose(r["emb"], emb.weight.grad.to_dense().numpy(), atol=1e-6)
        assert r["unused"]  # no rank gave it a gradient: still None, as in one process
        for on in grams:
            np.testing.assert_allclose(r["gram"][on], grams[on], rtol=1e-5, atol=1e-9)
        assert r["agree"] == {"rank": 0}
        assert r["gathered"] == [[0, 1], [0, 1, 2]]
        one = scored(SINGLE)  # each process scored half the rows; every process has all the predictions
        np.testing.assert_allclose(r["scored"]["click"], one["click"], rtol=1e-6)
        for task, values in one["metrics"].items():
            assert r["scored"]["metrics"][task] == pytest.approx(values, rel=1e-6, nan_ok=True), task
    assert got[0] == got[1]  # identical, not just close


METHODS_CHILD = r"""
import json, sys, torch, torch.distributed as dist
sys.path.insert(0, sys.argv[4])
from test_distributed import train_every_method
from mtlrec.distributed import World
torch.set_num_threads(1)
rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
open(out, "w").write(json.dumps(train_every_method(World(rank, 2))))
dist.barrier()  # no process tears the group down while the other still reads from it
dist.destroy_process_group()
"""


def train_every_method(world) -> dict:
    """{method: {"weights": the task weights after 6 steps, "state": the method's state, "model": a
    sum of every weight}} of a small MMoE trained by ``world`` (these processes)."""
    from mtlrec.config import TrainConfig
    from mtlrec.train.trainer import Trainer
    from mtlrec.weighting import WEIGHTINGS, build_weighting

    table = simulate(rows=3000, users=200, items=100, seed=4)
    encoder = Encoder(default_schema()).fit(table)
    data = encoder.transform(table)
    train, valid = data.rows(slice(0, 2400)), data.rows(slice(2400, None))
    out = {}
    for method in WEIGHTINGS.names():
        cfg = ExperimentConfig.model_validate({"model": {"name": "mmoe", "embedding_dim": 4, "tower_dims": [8]},
                                               "weighting": {"name": method}})  # fmt: skip
        torch.manual_seed(0)
        model = build_model(cfg.model, encoder.layout(), encoder.schema.tasks)
        weighting = build_weighting(cfg.weighting, model.loss_tasks)
        Trainer(model, weighting, TrainConfig(epochs=1, batch_size=400, seed=0), world=world).fit(train, valid)
        out[method] = {"weights": weighting.weights(),
                       "state": {k: v.tolist() for k, v in weighting.state_dict().items()},
                       "model": float(sum(p.double().sum() for p in model.state_dict().values()))}  # fmt: skip
    return out


def test_every_weighting_method_decides_alike_in_every_process_and_as_one_process(tmp_path):
    here = str(Path(__file__).parent)
    children = [subprocess.Popen([sys.executable, "-c", METHODS_CHILD, str(r), str(tmp_path / "store"),
                                  str(tmp_path / f"{r}.json"), here], env=LOOPBACK) for r in range(2)]  # fmt: skip
    for child in children:
        assert child.wait(timeout=TIMEOUT) == 0
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]  # weights, the methods' state (FAMO, DWA, GradNorm, uncertainty) and the model
    one = train_every_method(SINGLE)
    for method, got in ranks[0].items():
        assert got["weights"] == pytest.approx(one[method]["weights"], abs=1e-4), method
        assert got["model"] == pytest.approx(one[method]["model"], rel=1e-5), method


# -- the command under torchrun -------------------------------------------------------------------------
CASES = {  # name -> changes to the tiny config
    "static": {},
    "mgda": {"weighting": {"name": "mgda"}},
    "nash_mtl": {"weighting": {"name": "nash_mtl"}},
    "stream": {"stream": True},
}


def case_config(tiny, root: Path, name: str) -> dict:
    raw = copy.deepcopy(tiny)
    raw["model"] = {**raw["model"], "name": "mmoe", "mmoe": {"n_experts": 2, "expert_dims": [16]}}
    raw["train"].update(checkpoint_every=3)
    changes = dict(CASES[name])
    if changes.pop("stream", False):
        raw["data"] = {"source": "file", "path": str(root / "parts"), "shuffle_buffer": 1500,
                       "split": {"method": "hash", "column": "request_id"}}  # fmt: skip
        raw["schema"] = dataclasses.asdict(default_schema())
    raw.update(changes)
    return raw


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config_shared, torchrun):
    """Each case trained by one process (here) and by two (torchrun)."""
    root = tmp_path_factory.mktemp("ddp")
    assert main(["simulate", "--rows", "6000", "--part-rows", "2000", "--users", "500", "--items", "300",
                 "--out", str(root / "parts"), "--quiet"]) == 0  # fmt: skip
    runs = {}
    for name in CASES:
        raw = case_config(tiny_config_shared, root, name)
        (root / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        run_experiment(ExperimentConfig.model_validate(raw), root / name / "one")
        done = torchrun(["-m", "mtlrec", "train", str(root / f"{name}.yaml"), "--out", str(root / name / "two"),
                         "--no-report", "--quiet"])  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = root / name
    return root, runs


@pytest.mark.parametrize("name", ["static", "stream"])
def test_two_processes_train_the_model_one_process_trains(trained, name):
    _, runs = trained
    one, two = (load_tensors(runs[name] / k / "model.safetensors") for k in ("one", "two"))
    assert one.keys() == two.keys()
    worst = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
    assert worst < 1e-5
    h1, h2 = (read_history(runs[name] / k) for k in ("one", "two"))
    assert len(h1) == len(h2) == 2
    for a, b in zip(h1, h2):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["absent_batches"] == a["absent_batches"]
        assert b["distributed"]["processes"] == 2 and b["distributed"]["bytes"] > 0 and "distributed" not in a
    e1, e2 = (read_json(runs[name] / k / "encoder.json") for k in ("one", "two"))  # a stream: the pass was shared
    assert {k: v for k, v in e2.items() if k != "numeric"} == {k: v for k, v in e1.items() if k != "numeric"}
    for feature, stats in e1["numeric"].items():
        assert e2["numeric"][feature] == pytest.approx(stats, rel=1e-12), feature
    assert read_json(runs[name] / "two" / "run.json")["trained_on"]["processes"] == 2
    assert "processes" not in read_json(runs[name] / "one" / "run.json")["trained_on"]
    m1, m2 = (read_json(runs[name] / k / "metrics.json") for k in ("one", "two"))
    assert m2["test"]["click"]["auc"] == pytest.approx(m1["test"]["click"]["auc"], abs=1e-4)
    assert m2["best_epoch"] == m1["best_epoch"]


@pytest.mark.parametrize("name", ["mgda", "nash_mtl"])
def test_gradient_methods_pick_the_one_process_weights(trained, name):
    _, runs = trained
    h1, h2 = (read_history(runs[name] / k) for k in ("one", "two"))
    for a, b in zip(h1, h2):
        assert b["weights"] == pytest.approx(a["weights"], abs=1e-5)
        assert b["weights"] != {t: 1.0 for t in b["weights"]}  # the method did choose weights


KILLING = r"""
import os, signal, sys
from mtlrec.train import trainer
if os.environ["RANK"] == "1":  # rank 1 dies after its N-th step; torchrun then stops rank 0
    step, count = trainer.Trainer.train_step, [0]
    def train_step(self, batch):
        result = step(self, batch)
        count[0] += 1
        if count[0] == int(os.environ["KILL_AFTER"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    trainer.Trainer.train_step = train_step
from mtlrec.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def untimed(rows):
    skip = ("seconds", "samples_per_s", "distributed")
    return [{k: v for k, v in r.items() if k not in skip} for r in rows]


@pytest.mark.parametrize("name, kill_after, saved", [
    ("static", 13, 12),  # 10 steps an epoch: in epoch 2, past step 12's save
    ("stream", 17, 15),  # in epoch 2's second shuffle window (3 batches each), which a resume reads from
])  # fmt: skip
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_one(trained, torchrun, name, kill_after, saved):
    root, runs = trained
    script, out = root / "killing.py", root / f"killed-{name}"
    script.write_text(KILLING)
    args = ["train", str(root / f"{name}.yaml"), "--out", str(out), "--no-report", "--quiet"]
    died = torchrun([str(script), *args], env={"KILL_AFTER": str(kill_after)})
    assert died.returncode != 0 and not (out / "run.json").exists()
    assert load_checkpoint(latest_checkpoint(out))["train"]["progress"]["global_step"] == saved
    if name == "static":  # resumed by one process: it goes on, and says how it differs
        shutil.copytree(out, root / "killed-one")
        with pytest.warns(UserWarning, match="trained by 2 process.es., resumed by 1"):
            run_experiment(ExperimentConfig.model_validate(yaml.safe_load((root / "static.yaml").read_text())),
                           root / "killed-one", resume=True)  # fmt: skip
        assert (root / "killed-one" / "run.json").is_file()
    resumed = torchrun(["-m", "mtlrec", *args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want = runs[name] / "two"
    a, b = load_tensors(want / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert untimed(read_history(out)) == untimed(read_history(want))
    assert read_json(out / "metrics.json") == read_json(want / "metrics.json")


def test_a_two_process_warm_start_on_a_stream_is_the_one_process_warm_start(trained, torchrun):
    """--init-from on streamed data: the shared first pass grows the parent's vocabularies as one
    process does (its counts carried over, not once per process)."""
    root, runs = trained
    parent = runs["static"] / "one"
    raw = yaml.safe_load((root / "stream.yaml").read_text())
    raw["train"]["epochs"] = 1
    (root / "warm.yaml").write_text(yaml.safe_dump(raw))
    run_experiment(ExperimentConfig.model_validate(raw), root / "warm-one", init_from=parent)
    done = torchrun(["-m", "mtlrec", "train", str(root / "warm.yaml"), "--init-from", str(parent),
                     "--out", str(root / "warm-two"), "--no-report"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("2 processes train one model (gloo on cpu)") == 1  # said once, by rank 0
    assert done.stdout.count("run directory:") == 1
    assert read_json(root / "warm-two" / "counts.json") == read_json(root / "warm-one" / "counts.json")
    e1, e2 = (read_json(root / k / "encoder.json") for k in ("warm-one", "warm-two"))
    assert e2 == e1  # the parent's scaling, kept as it is
    one, two = (load_tensors(root / k / "model.safetensors") for k in ("warm-one", "warm-two"))
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5


def test_a_two_process_run_exports_and_serves_like_any_other(trained, capsys):
    with warnings.catch_warnings():  # starlette's test client warns that it prefers httpx2
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from mtlrec.serve.app import create_app
    from mtlrec.serve.predictor import Predictor

    _, runs = trained
    run = runs["static"] / "two"
    assert main(["inspect", str(run)]) == 0
    assert "2 processes (torchrun)" in capsys.readouterr().out
    assert "precision float32, 2 processes (torchrun)" in (write_report(run, run.parent / "report.html")).read_text()
    assert main(["export", str(run), "--format", "torchscript", "--out", str(run.parent / "export")]) == 0
    assert (run.parent / "export" / "model.pt").is_file()
    predictor = Predictor.load(run)
    table = simulate(rows=20, users=5, items=300, seed=3)
    raw = table.select(predictor.encoder.schema.columns(labels=False)).to_pylist()
    answer = TestClient(create_app(predictor)).post("/v1/score", json={"rows": raw})
    assert answer.status_code == 200, answer.text
    for name, values in predictor.predict(table).items():
        np.testing.assert_allclose(answer.json()["predictions"][name], values, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", sorted(MODELS.names()))
def test_every_model_takes_an_empty_share_of_a_batch(name, shop_table):
    """A process's rows of a batch may be none (a small last batch): losses 0, gradients 0."""
    encoder = Encoder(default_schema()).fit(shop_table.slice(0, 500))
    cfg = ExperimentConfig.model_validate({"model": {"name": name, "embedding_dim": 4, "tower_dims": [8]}})
    model = build_model(cfg.model, encoder.layout(), encoder.schema.tasks)
    empty = encoder.transform(shop_table.slice(0, 500)).take(torch.arange(0))
    losses = training_losses(model, empty)
    assert all(float(v.detach()) == 0.0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["simulate", "--rows", "100", "--out", str(tmp_path / "s.parquet")]) == 2
    said = capsys.readouterr().err
    assert "mtlrec simulate runs in one process; under torchrun (WORLD_SIZE=2) only train does" in said
    assert not (tmp_path / "s.parquet").exists()


def rows_of(batch) -> list[tuple]:
    """Each row of a batch as a tuple of its inputs (what identifies it here)."""
    return [tuple(c) + tuple(d) for c, d in zip(batch.cat.tolist(), batch.dense.tolist())]


@pytest.mark.parametrize("size, batch, buffer", [(2, 64, 100), (3, 2, 2), (4, 7, 30)])
def test_the_shards_of_each_batch_make_up_the_one_process_batch(tmp_path, size, batch, buffer):
    """In memory and streamed, with shares of a batch (and of a shuffle window) that are empty."""
    from mtlrec.data.stream import open_splits

    assert main(["simulate", "--rows", "300", "--part-rows", "120", "--users", "40", "--items", "30",
                 "--out", str(tmp_path / "parts"), "--quiet"]) == 0  # fmt: skip
    cfg = ExperimentConfig.model_validate({"data": {"source": "file", "path": str(tmp_path / "parts"),
                                                    "shuffle_buffer": buffer}})  # fmt: skip
    _, splits = open_splits(cfg.data, default_schema())
    streamed = splits["train"]
    in_memory = EncodedData.concat([chunk for chunk, _ in streamed.chunks()])
    for data in (in_memory, streamed):
        def epoch(shard):
            return list(data.batches(batch, shuffle=True, generator=torch.Generator().manual_seed(3), shard=shard))

        one = epoch(Shard())
        parts = [epoch(Shard(r, size)) for r in range(size)]
        assert all(len(p) == len(one) for p in parts)  # the same number of steps in every process
        if batch < size:  # some process has no row of a batch (of the stream's first window too)
            assert any(len(b) == 0 for p in parts for b in p)
        for i, whole in enumerate(one):
            assert sorted(sum((rows_of(p[i]) for p in parts), [])) == sorted(rows_of(whole))


def test_a_gpu_index_under_torchrun_is_refused(monkeypatch, tiny_config, tmp_path):
    from mtlrec.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    tiny_config["train"]["device"] = "cuda:1"
    with pytest.raises(ConfigError, match="train.device: 'cuda:1' under torchrun, where each process takes the GPU"):
        run_experiment(ExperimentConfig.model_validate(tiny_config), tmp_path / "run")
    assert not (tmp_path / "run").exists()
