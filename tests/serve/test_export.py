"""Exported models (ONNX through onnxruntime, TorchScript through torch.jit.load) give the PyTorch
model's predictions to 1e-5 on held-out rows, for batches of one and many rows: TorchScript for
every registered model; ONNX for the trained run (shared_bottom), mmoe, and esmm (its derived
output) on a schema of numeric features only. An ONNX export takes 2-7 s, so not every model is
exported to ONNX by default: MTLREC_ONNX_ALL=1 adds them all."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import torch

from mtlrec.cli.main import main
from mtlrec.config import ExperimentConfig
from mtlrec.data.encode import Encoder
from mtlrec.data.synthetic import default_schema
from mtlrec.evaluation import predict
from mtlrec.export import Scorer, export_model, input_names, run_exported
from mtlrec.hyper import keyword_parameters
from mtlrec.models import MODELS, build_model

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime (pip install 'mtlrec[export]')")


def small_model(name, encoder, seed=0, task_paths=()):
    """A small model of the registry with embeddings spread out (std 0.5), so that every input moves
    the outputs."""
    section = {k: [8] for k in keyword_parameters(MODELS.get(name)) if k.endswith("_dims") and k != "tower_dims"}
    spec = {"name": name, "embedding_dim": 4, "tower_dims": [8], name: section, "task_paths": list(task_paths)}
    cfg = ExperimentConfig.model_validate({"model": spec})
    torch.manual_seed(seed)
    model = build_model(cfg.model, encoder.layout(), encoder.schema.tasks)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
                module.weight.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def shop(shop_table, fresh_table):
    """(encoder fitted on the session's shop, held-out rows encoded)."""
    encoder = Encoder(default_schema()).fit(shop_table)
    return encoder, encoder.transform(fresh_table, labels=False)


def assert_parity(model, encoder, data, path, fmt):
    """The exported file's outputs equal ``evaluation.predict`` on 200 held-out rows and on one row."""
    scorer = Scorer(model, encoder.targets_)
    want = predict(model, dataclasses.replace(data, targets=dict(encoder.targets_)))
    for rows in (slice(None), slice(7, 8)):
        inputs = {n: getattr(data, f)[rows] for n, f in zip(input_names(model.layout), _fields(model.layout))}
        got = run_exported(path, fmt, inputs, scorer.outputs)
        assert list(got) == [t.name for t in model.output_tasks]
        for name, values in got.items():
            assert values.shape == want[name][rows].shape, name
            np.testing.assert_allclose(values, want[name][rows], rtol=1e-5, atol=1e-5, err_msg=f"{fmt} {name}")


def _fields(layout):
    from mtlrec.export import INPUTS

    return [INPUTS[n] for n in input_names(layout)]


# MTLREC_ONNX_ALL=1 exports every registered model to ONNX too (about 40 s more)
ONNX_MODELS = MODELS.names() if os.environ.get("MTLREC_ONNX_ALL") == "1" else ["mmoe"]
CASES = [(name, "torchscript") for name in MODELS.names()] + [(name, "onnx") for name in ONNX_MODELS]


@pytest.mark.parametrize("name, fmt", CASES)
def test_exported_models_give_the_same_predictions(tmp_path, shop, name, fmt):
    encoder, data = shop
    model = small_model(name, encoder)
    written = export_model(model, encoder.targets_, tmp_path, [fmt])
    assert_parity(model, encoder, data, written[fmt], fmt)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_task_paths_are_part_of_the_exported_graph(tmp_path, shop, fmt):
    encoder, data = shop
    model = small_model("mmoe", encoder, task_paths=["interests"])
    written = export_model(model, encoder.targets_, tmp_path, [fmt])
    assert_parity(model, encoder, data, written[fmt], fmt)


@pytest.mark.parametrize(
    "keep, name, formats", [("numeric", "esmm", ["onnx", "torchscript"]), ("categorical", "mmoe", ["torchscript"])]
)
def test_schemas_without_some_input_kinds(tmp_path, shop_table, fresh_table, keep, name, formats):
    """Inputs without columns are left out of the graph (and filled with empty tensors inside)."""
    schema = default_schema()
    schema = dataclasses.replace(schema, features=tuple(f for f in schema.features if f.kind == keep))
    encoder = Encoder(schema).fit(shop_table)
    model = small_model(name, encoder)
    written = export_model(model, encoder.targets_, tmp_path, formats)
    info = json.loads((tmp_path / "export.json").read_text())
    assert [i["name"] for i in info["inputs"]] == (["dense_values"] if keep == "numeric" else ["cat_ids"])
    for fmt, path in written.items():
        assert_parity(model, encoder, encoder.transform(fresh_table, labels=False), path, fmt)


def test_export_command_writes_into_the_run(tmp_path, trained_run, predictor, fresh_table, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    assert json.loads((run / "export.json").read_text())["files"] == {"torchscript": "model.pt"}
    assert main(["export", str(run)]) == 0  # onnx by default; export.json keeps listing model.pt
    out = capsys.readouterr().out
    assert out.count("largest difference from PyTorch on 256 random rows") == 2
    info = json.loads((run / "export.json").read_text())
    assert info["files"] == {"torchscript": "model.pt", "onnx": "model.onnx"}
    assert info["inputs"][0] == {"name": "cat_ids", "dtype": "int64", "shape": ["batch", 5],
                                 "columns": ["category", "brand", "device", "hour", "position"]}  # fmt: skip
    assert [o["name"] for o in info["outputs"]] == [t.name for t in predictor.tasks]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    data = predictor.encoder.transform(fresh_table, labels=False)
    for fmt in ("onnx", "torchscript"):
        assert_parity(predictor.model, predictor.encoder, data, run / info["files"][fmt], fmt)


def test_export_to_another_directory(tmp_path, trained_run, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(trained_run), "--format", "torchscript", "--out", str(out), "--check", "8"]) == 0
    assert (out / "model.pt").is_file() and (out / "export.json").is_file()
    assert not (trained_run / "export.json").exists()
    assert "on 8 random rows" in capsys.readouterr().out


def test_unknown_format(trained_run, capsys):
    assert main(["export", str(trained_run), "--format", "tflite"]) == 2
    assert capsys.readouterr().err.strip() == "error: export format 'tflite': expected one of onnx, torchscript"
