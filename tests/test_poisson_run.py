"""A count task (``loss: poisson``) end to end: trained on counts drawn from a known log-linear
rate, its predictions are expected counts close to that rate, the same numbers in evaluate,
predict, the HTTP service and an exported model."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mtlrec.config import ExperimentConfig
from mtlrec.data.readers import write_table
from mtlrec.experiment import run_experiment
from mtlrec.metrics import regression
from mtlrec.serve.predictor import Predictor

ROWS = 6000


def counts(rows: int, seed: int) -> pa.Table:
    """Units ~ Poisson(rate), log rate = 0.8 x + 0.6 (shop a) or -0.6 (shop b); the rate is the
    oracle. ``value`` is a plain regression target beside it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, rows)
    shop = rng.integers(0, 2, rows)
    rate = np.exp(0.8 * x + np.where(shop == 0, 0.6, -0.6))
    return pa.table({
        "x": x, "shop": pa.array(np.array(["a", "b"])[shop]),
        "units": rng.poisson(rate).astype(np.int64), "oracle_units": rate,
        "value": 3.0 * x + rng.normal(0.0, 0.5, rows), "oracle_value": 3.0 * x,
    })  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("poisson")
    write_table(counts(ROWS, 0), tmp / "counts.parquet")
    cfg = ExperimentConfig.model_validate({
        "data": {"source": "file", "path": str(tmp / "counts.parquet"), "split": {"valid": 0.1, "test": 0.2}},
        "schema": {
            "features": [{"name": "x", "kind": "numeric"}, {"name": "shop", "kind": "categorical"}],
            "tasks": [{"name": "units", "kind": "regression", "loss": "poisson"},
                      {"name": "value", "kind": "regression"}],
        },
        "model": {"name": "shared_bottom", "embedding_dim": 4, "tower_dims": [16],
                  "shared_bottom": {"bottom_dims": [32]}},
        "train": {"epochs": 8, "lr": 0.01, "batch_size": 256, "progress": False, "threads": 1},
    })  # fmt: skip
    metrics = run_experiment(cfg, tmp / "run")
    return tmp / "run", metrics


def test_a_count_task_learns_the_rate_and_reports_count_metrics(run):
    run_dir, metrics = run
    test, oracle = metrics["test"]["units"], metrics["oracle"]["test"]["units"]
    assert list(test) == ["poisson_deviance", "wape", "rmse", "mae"]  # the defaults of loss: poisson
    assert list(metrics["test"]["value"]) == ["mse", "rmse", "mae"]  # other regression tasks: unchanged
    assert metrics["monitor"] == "units.poisson_deviance"
    fresh = counts(4000, 1)
    preds = Predictor.load(run_dir).predict(fresh)["units"]
    rate = fresh["oracle_units"].to_numpy()
    assert (preds > 0).all()
    # within 8 % of the true rate on average (measured: 5.5 %); the rate varies 30-fold and the mean
    # count is 150 % off it on average
    assert np.mean(np.abs(preds / rate - 1.0)) < 0.08
    assert preds.mean() == pytest.approx(rate.mean(), rel=0.05)  # a log link with an intercept: calibrated
    # the test deviance is the oracle's plus a little; predicting the mean count is far worse
    y = fresh["units"].to_numpy().astype(float)
    assert regression.poisson_deviance(y, preds) < 1.02 * regression.poisson_deviance(y, rate)
    assert test["poisson_deviance"] < 1.03 * oracle["poisson_deviance"]
    assert regression.poisson_deviance(y, np.full_like(y, y.mean())) > 1.4 * regression.poisson_deviance(y, rate)


def test_evaluate_predict_serve_and_export_give_the_same_expected_counts(run, tmp_path):
    import warnings

    from mtlrec.export import export_model, run_exported
    from mtlrec.serve.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient warns that it prefers httpx2
        from fastapi.testclient import TestClient

    run_dir, _ = run
    predictor = Predictor.load(run_dir)
    fresh = counts(50, 2)
    want = predictor.predict(fresh)
    # evaluate: the metrics of exactly these predictions
    got = predictor.evaluate(fresh)["data"]["units"]
    y = fresh["units"].to_numpy().astype(float)
    assert got["poisson_deviance"] == pytest.approx(regression.poisson_deviance(y, want["units"]), rel=1e-6)
    assert got["wape"] == pytest.approx(regression.wape(y, want["units"]), rel=1e-6)
    # the service
    rows = fresh.select(["x", "shop"]).to_pylist()
    body = TestClient(create_app(predictor)).post("/v1/score", json={"rows": rows[:8]}).json()
    np.testing.assert_allclose(body["predictions"]["units"], want["units"][:8], rtol=1e-6)
    # an exported model: expected counts, not log rates
    export_model(predictor.model, predictor.encoder.targets_, tmp_path, ["torchscript"])
    data = predictor.encoder.transform(fresh, labels=False)
    inputs = {"cat_ids": data.cat, "dense_values": data.dense}
    out = run_exported(tmp_path / "model.pt", "torchscript", inputs, ["units", "value"])
    np.testing.assert_allclose(out["units"], want["units"], rtol=1e-5)


def test_an_onnx_export_gives_expected_counts(run, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime (pip install 'mtlrec[export]')")
    from mtlrec.export import export_model, run_exported

    predictor = Predictor.load(run[0])
    fresh = counts(50, 3)
    export_model(predictor.model, predictor.encoder.targets_, tmp_path, ["onnx"])
    data = predictor.encoder.transform(fresh, labels=False)
    out = run_exported(tmp_path / "model.onnx", "onnx", {"cat_ids": data.cat, "dense_values": data.dense}, ["units"])
    np.testing.assert_allclose(out["units"], predictor.predict(fresh)["units"], rtol=1e-5)
