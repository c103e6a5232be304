"""Row-wise Adam for embedding tables: the same parameters as dense Adam while touching only the
batch's rows, and the trainer giving the same model with either embedding update."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mtlrec.artifacts import load_tensors, read_json
from mtlrec.config import ExperimentConfig
from mtlrec.train.optim import RowwiseAdam


def _pair(rows: int = 40, dim: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    sparse = torch.nn.Embedding(rows, dim, sparse=True)
    dense = torch.nn.Embedding(rows, dim)
    dense.weight.data.copy_(sparse.weight.data)
    return sparse, dense


def _train_both(sparse, dense, opt_sparse, opt_dense, steps: int, *, dense_grad: bool = False, id_dtype=torch.int64):
    """A nonlinear loss on random rows; rows 30.. are used only every 25th step (long gaps)."""
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        ids = torch.randint(0, 40 if step % 25 == 0 else 30, (6,), generator=g, dtype=id_dtype)
        target = torch.randn(len(ids), sparse.embedding_dim, generator=g)
        opt_sparse.catch_up(sparse.weight, ids)  # what the trainer's pre-forward hook does
        for emb, opt in ((sparse, opt_sparse), (dense, opt_dense)):
            opt.zero_grad()
            ((emb(ids) - target) ** 2).sum().backward()
            if dense_grad and emb is sparse:
                emb.weight.grad = emb.weight.grad.to_dense()
            opt.step()


@pytest.mark.parametrize("dense_grad", [False, True], ids=["sparse-grad", "dense-grad"])
def test_rowwise_adam_gives_dense_adams_parameters(dense_grad):
    sparse, dense = _pair()
    opt_sparse, opt_dense = RowwiseAdam(sparse.parameters(), lr=0.01), torch.optim.Adam(dense.parameters(), lr=0.01)
    _train_both(sparse, dense, opt_sparse, opt_dense, 200, dense_grad=dense_grad)
    opt_sparse.flush()
    moved = (dense.weight - _pair()[1].weight).abs().max()
    assert moved > 0.5  # it did train
    torch.testing.assert_close(sparse.weight, dense.weight, atol=2e-5, rtol=0)
    state = opt_sparse.state[sparse.weight]
    torch.testing.assert_close(state["exp_avg"], opt_dense.state[dense.weight]["exp_avg"], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(state["exp_avg_sq"], opt_dense.state[dense.weight]["exp_avg_sq"], atol=1e-8, rtol=1e-4)


def test_int32_ids_train_as_int64_ones():
    sparse, dense = _pair()
    opt_sparse, opt_dense = RowwiseAdam(sparse.parameters(), lr=0.01), torch.optim.Adam(dense.parameters(), lr=0.01)
    _train_both(sparse, dense, opt_sparse, opt_dense, 60, id_dtype=torch.int32)
    opt_sparse.flush()
    torch.testing.assert_close(sparse.weight, dense.weight, atol=2e-5, rtol=0)


def test_untouched_rows_lag_until_flush():
    """Dense Adam keeps moving a row after its last gradient (momentum); row-wise Adam adds that
    movement when the row is next read, or at flush()."""
    sparse, dense = _pair()
    opt_sparse, opt_dense = RowwiseAdam(sparse.parameters(), lr=0.01), torch.optim.Adam(dense.parameters(), lr=0.01)
    ids = torch.tensor([7])
    for step in range(30):
        for emb, opt in ((sparse, opt_sparse), (dense, opt_dense)):
            opt.zero_grad()
            (emb(ids if step == 0 else torch.tensor([0])).sum()).backward()
            opt.step()
    assert (sparse.weight[7] - dense.weight[7]).abs().max() > 1e-3  # not yet caught up
    opt_sparse.flush()
    torch.testing.assert_close(sparse.weight, dense.weight, atol=1e-6, rtol=0)


def test_rowwise_adam_rejects_betas_whose_series_diverges():
    with pytest.raises(ValueError, match="b1\\^2 < b2"):
        RowwiseAdam([torch.nn.Parameter(torch.zeros(3, 2))], betas=(0.99, 0.9))


@pytest.fixture(scope="module")
def prepared(tiny_config_shared):
    from mtlrec.experiment import prepare

    return prepare(ExperimentConfig.model_validate(tiny_config_shared))


def _run(raw, prepared, out, weighting="static", **train):
    from mtlrec.experiment import run_experiment

    raw = copy.deepcopy(raw)
    raw["train"].update(train)
    raw["weighting"] = {"name": weighting}
    run_experiment(ExperimentConfig.model_validate(raw), out, data=prepared)
    return load_tensors(out / "model.safetensors"), read_json(out / "metrics.json")


@pytest.mark.parametrize("weighting", ["static", "pcgrad"])  # pcgrad: per-task gradients of the table
def test_trainer_gives_the_same_model_with_rowwise_and_dense_updates(weighting, tiny_config_shared, prepared, tmp_path):
    rowwise, m_rowwise = _run(tiny_config_shared, prepared, tmp_path / "r", weighting, embedding_update="rowwise")
    dense, m_dense = _run(tiny_config_shared, prepared, tmp_path / "d", weighting, embedding_update="dense")
    assert rowwise.keys() == dense.keys()
    for name in rowwise:
        # the same up to float rounding, and up to eps in the skipped steps of rows whose gradients
        # are tiny (a rare id's |m| / sqrt(v) near eps): a fraction of one step of lr 1e-3
        torch.testing.assert_close(rowwise[name], dense[name], atol=1e-3, rtol=0)
        assert (rowwise[name] - dense[name]).abs().median() < 1e-6
    assert m_rowwise["test"]["click"]["auc"] == pytest.approx(m_dense["test"]["click"]["auc"], abs=2e-3)


def _fit(raw, prepared, **train):
    from mtlrec.config import TrainConfig
    from mtlrec.models import build_model
    from mtlrec.train.trainer import Trainer
    from mtlrec.weighting import build_weighting

    cfg = ExperimentConfig.model_validate(raw)
    torch.manual_seed(0)
    model = build_model(cfg.model, prepared.encoder.layout(), prepared.schema.tasks)
    weighting = build_weighting(cfg.weighting, model.loss_tasks)
    dtypes = []
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda mod, args, out: dtypes.append((mod.training, out.dtype)))
    trainer = Trainer(model, weighting, TrainConfig(progress=False, **train))
    trainer.fit(prepared.encoded["train"], prepared.encoded["valid"])
    return model, set(dtypes)


def test_trainer_leaves_the_model_as_it_found_it(tiny_config_shared, prepared):
    from mtlrec.train.optim import embedding_tables

    model, _ = _fit(tiny_config_shared, prepared, epochs=1)
    tables = embedding_tables(model)
    assert tables and all(not m.sparse and not m._forward_pre_hooks for m in tables)


def test_bfloat16_precision_trains_under_autocast(tiny_config_shared, prepared):
    from mtlrec.evaluation import evaluate_model, predict

    model, dtypes = _fit(tiny_config_shared, prepared, epochs=2, precision="bfloat16")
    assert dtypes == {(True, torch.bfloat16), (False, torch.float32)}  # training in bf16, evaluation not
    valid = prepared.encoded["valid"]
    bf16 = evaluate_model(model, predict(model, valid), valid)["click"]["auc"]
    model, dtypes = _fit(tiny_config_shared, prepared, epochs=2)
    assert dtypes == {(True, torch.float32), (False, torch.float32)}
    fp32 = evaluate_model(model, predict(model, valid), valid)["click"]["auc"]
    assert bf16 == pytest.approx(fp32, abs=0.02)


def test_lr_decay_scales_both_optimizers_and_keeps_rowwise_equal_to_dense(tiny_config_shared, prepared, tmp_path):
    raw = copy.deepcopy(tiny_config_shared)
    raw["train"]["epochs"] = 3
    rowwise, _ = _run(raw, prepared, tmp_path / "r", lr_decay=0.5, embedding_update="rowwise")
    dense, _ = _run(raw, prepared, tmp_path / "d", lr_decay=0.5, embedding_update="dense")
    plain, _ = _run(raw, prepared, tmp_path / "p", embedding_update="rowwise")
    for name in rowwise:
        torch.testing.assert_close(rowwise[name], dense[name], atol=1e-3, rtol=0)
        assert (rowwise[name] - dense[name]).abs().median() < 1e-6
    # the decay did something: smaller later steps give other weights than a constant rate
    assert any((rowwise[n] - plain[n]).abs().max() > 1e-4 for n in rowwise)


def test_scale_lr_multiplies_every_group():
    from mtlrec.config import TrainConfig
    from mtlrec.train.optim import Optimizers

    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 1))
    opt = Optimizers(model, [], TrainConfig(lr=0.01))
    opt.scale_lr(0.5)
    opt.scale_lr(0.5)
    groups = [*opt.dense.param_groups, *(opt.rowwise.param_groups if opt.rowwise else [])]
    assert opt.rowwise is not None and all(g["lr"] == pytest.approx(0.0025) for g in groups)
    opt.close()


@pytest.mark.parametrize("update, warns", [("rowwise", True), ("dense", False)])
def test_weight_decay_that_skips_the_tables_is_said(update, warns, recwarn):
    from mtlrec.config import TrainConfig
    from mtlrec.train.optim import Optimizers

    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 1))
    Optimizers(model, [], TrainConfig(weight_decay=0.01, embedding_update=update)).close()
    Optimizers(model, [], TrainConfig(weight_decay=0.0, embedding_update=update)).close()
    said = [str(w.message) for w in recwarn.list if "weight_decay" in str(w.message)]
    assert said == (["train.weight_decay 0.01 reaches the dense parameters only: with train.embedding_update: "
                     "rowwise the embedding tables are not decayed (embedding_update: dense decays them too, at "
                     "the cost of a dense table update every step)"] if warns else [])  # fmt: skip


def test_a_gap_longer_than_the_tables_is_caught_up_as_dense_adam_would():
    """A row last touched at step 1 and read again at step 45,000 (a resume, or a warm start's old
    rows): the closed form with per-step tables capped at ``_cap`` steps gives dense Adam's
    parameter, and the tables stay that size whatever the step."""
    p = torch.nn.Parameter(torch.zeros(2, 1, dtype=torch.float64))
    opt = RowwiseAdam([p], lr=0.01, eps=0.0)
    p.grad = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    opt.step()
    opt.state[p]["step"] = 45_000  # other rows trained for 44,999 more steps
    opt.flush()
    b1, b2, lr = 0.9, 0.999, 0.01
    m, v, x = 0.0, 0.0, 0.0
    for t in range(1, 45_001):  # dense Adam: one gradient of 1, then zeros
        g = 1.0 if t == 1 else 0.0
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        x -= lr * (m / (1 - b1**t)) / math.sqrt(v / (1 - b2**t))
    assert float(p.detach()[0, 0]) == pytest.approx(x, rel=1e-9) and x < -0.05
    assert len(opt._tables[((b1, b2), torch.device("cpu"))]["tail"]) <= RowwiseAdam._cap(b2) + 1 < 45_000
