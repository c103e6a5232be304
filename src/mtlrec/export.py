"""Export a run's model for other runtimes: ONNX (onnxruntime, ...) and TorchScript (libtorch).

The exported graph takes the encoded inputs, as ``Encoder.transform`` makes them from raw rows
(the run's encoder.json describes that step), and returns what ``Predictor.predict`` returns: one
output per task (and derived output such as ESMM's ``click_and_purchase``), probabilities or values
on the label's original scale. Inputs (an input whose width is 0 is left out):

  cat_ids       [batch, F] int64     categorical ids (0 = unseen or missing)
  seq_ids       [batch, S, L] int64  sequence ids (0 = padding or unseen)
  dense_values  [batch, D] float32   encoded numeric columns (missing indicators included)

Outputs: [batch] for binary and regression tasks, [batch, K] for multiclass and multilabel ones.
``export.json`` beside the files lists them, the inputs' columns and the outputs.
"""

from __future__ import annotations

import contextlib
import json
from copy import deepcopy
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

import mtlrec
from mtlrec.artifacts import atomic_path, write_json
from mtlrec.data.batches import TensorBatch
from mtlrec.errors import RunError
from mtlrec.losses import output_predictions
from mtlrec.models.base import MultiTaskModel
from mtlrec.spec import InputLayout

FORMAT = 1
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
# graph input name -> TensorBatch field (the plain field names would clash with ONNX node names)
INPUTS = {"cat_ids": "cat", "seq_ids": "seq", "dense_values": "dense"}


def _fields(layout: InputLayout) -> dict[str, tuple[tuple[int, ...], torch.dtype, list[str]]]:
    """TensorBatch field -> (shape after the batch dimension, dtype, column names)."""
    return {
        "cat": ((len(layout.cat_names),), torch.long, list(layout.cat_names)),
        "seq": ((len(layout.seq_names), max(layout.seq_lens, default=0)), torch.long, list(layout.seq_names)),
        "dense": ((layout.n_dense,), torch.float32, list(layout.dense_names)),
    }


def input_names(layout: InputLayout) -> tuple[str, ...]:
    """The inputs the exported graph takes: those with at least one column."""
    fields = _fields(layout)
    return tuple(name for name, field in INPUTS.items() if fields[field][0][0])


class Scorer(nn.Module):
    """Tensors in, per-output predictions out: ``model`` plus the logits -> predictions step, with
    only tensors at its boundary so that it traces and exports. Takes the ``inputs`` in order."""

    def __init__(self, model: MultiTaskModel, targets: dict[str, tuple[float, float]]) -> None:
        super().__init__()
        self.model = model.eval()
        self.targets = dict(targets)
        self.inputs = input_names(model.layout)
        self.outputs = tuple(t.name for t in model.output_tasks)
        self.fields = _fields(model.layout)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        given = {INPUTS[name]: x for name, x in zip(self.inputs, inputs)}
        n = inputs[0].shape[0]
        for field, (shape, dtype, _) in self.fields.items():  # fields without columns: empty tensors
            if field not in given:
                given[field] = torch.zeros((n, *shape), dtype=dtype, device=inputs[0].device)
        out = self.model(TensorBatch(given["cat"], given["seq"], given["dense"], labels={}, masks={}))
        return tuple(output_predictions(self.model.output_tasks, out, self.targets).values())


def example_inputs(layout: InputLayout, rows: int = 2) -> tuple[Tensor, ...]:
    """Zero tensors of the inputs' shapes (id 0 is valid for every field)."""
    fields = _fields(layout)
    return tuple(
        torch.zeros((rows, *fields[INPUTS[n]][0]), dtype=fields[INPUTS[n]][1]) for n in input_names(layout)
    )


def describe(scorer: Scorer, files: dict[str, str]) -> dict[str, Any]:
    """export.json: the exported files ({format: file name}), the inputs' columns and the outputs."""
    inputs = []
    for name in scorer.inputs:
        shape, dtype, columns = scorer.fields[INPUTS[name]]
        inputs.append({"name": name, "dtype": str(dtype).removeprefix("torch."), "shape": ["batch", *shape],
                       "columns": columns})  # fmt: skip
    outputs = []
    for t in scorer.model.output_tasks:
        shape = ["batch"] if t.out_dim == 1 else ["batch", t.out_dim]
        outputs.append({"name": t.name, "kind": t.kind, "dtype": "float32", "shape": shape})
    return {
        "format": FORMAT,
        "mtlrec": mtlrec.__version__,
        "files": files,
        "encoder": "encoder.json",
        "inputs": inputs,
        "outputs": outputs,
    }


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only errors from these loggers (the ONNX exporter's notes on skipped optimisations and on
    torchvision not being installed are not the user's concern)."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def export_onnx(scorer: Scorer, path: Path, *, opset: int | None = None) -> None:
    """ONNX through torch's dynamo exporter, with a dynamic batch dimension."""
    program = onnx_program(scorer, opset=opset)
    with atomic_path(path) as tmp:
        program.save(str(tmp), external_data=False)


class MeanBag(nn.Module):
    """``nn.EmbeddingBag(mode="mean", padding_idx=p)`` over 2-D ids ([N, L] -> [N, dim]) as a lookup
    and a masked mean: the same numbers, but a few ONNX nodes where the exporter turns an
    EmbeddingBag into a loop over the N bags (about 20x slower in onnxruntime on 500 rows)."""

    def __init__(self, bag: nn.EmbeddingBag) -> None:
        super().__init__()
        self.weight = bag.weight
        self.padding_idx = bag.padding_idx

    def forward(self, ids: Tensor) -> Tensor:
        keep = (ids != self.padding_idx).unsqueeze(-1)  # [N, L, 1]
        vectors = torch.nn.functional.embedding(ids, self.weight) * keep  # [N, L, dim]
        return vectors.sum(1) / keep.sum(1).clamp(min=1)


def _bags_as_lookups(scorer: Scorer) -> Scorer:
    """A copy of ``scorer`` whose mean EmbeddingBags with a padding index are MeanBags (the weights
    are shared, not copied)."""
    bags = [n for n, m in scorer.named_modules() if isinstance(m, nn.EmbeddingBag) and m.mode == "mean"
            and m.padding_idx is not None]  # fmt: skip
    if not bags:
        return scorer
    copy = Scorer(scorer.model, scorer.targets)
    memo = {id(p): p for p in scorer.parameters()}
    copy.model = deepcopy(scorer.model, memo)
    for name in bags:
        parent, _, leaf = name.removeprefix("model.").rpartition(".")
        owner = copy.model.get_submodule(parent) if parent else copy.model
        setattr(owner, leaf, MeanBag(getattr(owner, leaf)))
    return copy.eval()


def onnx_program(scorer: Scorer, *, opset: int | None = None) -> Any:
    """The scorer exported by torch's dynamo exporter (an ``ONNXProgram``; ``.model_proto`` is the
    ONNX model), with a dynamic batch dimension."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise RunError("ONNX export needs onnx and onnxscript: pip install 'mtlrec[export]'") from None
    scorer = _bags_as_lookups(scorer)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), _quiet("torch.onnx", "onnxscript", "onnx_ir"):
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecated pytree specs
        program = torch.onnx.export(
            scorer,
            example_inputs(scorer.model.layout),
            dynamo=True,
            input_names=list(scorer.inputs),
            output_names=list(scorer.outputs),
            dynamic_shapes=(tuple({0: batch} for _ in scorer.inputs),),  # one entry: forward(*inputs)
            opset_version=opset,
            verbose=False,
        )
    return program


def export_torchscript(scorer: Scorer, path: Path) -> None:
    """TorchScript by tracing; the batch dimension stays free (tested on batches of 1 and many)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 marks jit.trace deprecated; libtorch still loads it
        traced = torch.jit.trace(scorer, example_inputs(scorer.model.layout), check_trace=False)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))


def export_model(
    model: MultiTaskModel,
    targets: dict[str, tuple[float, float]],
    out_dir: str | Path,
    formats: Sequence[str] = ("onnx",),
) -> dict[str, Path]:
    """Write each format's file (model.onnx, model.pt) and export.json into ``out_dir``;
    returns {format: path}. export.json keeps listing files of earlier exports of the same model."""
    bad = [f for f in formats if f not in FILES]
    if bad:
        raise RunError(f"export format '{bad[0]}': expected one of {', '.join(FILES)}")
    out_dir = Path(out_dir)
    scorer = Scorer(model, targets).eval()
    written = {}
    for fmt in dict.fromkeys(formats):
        written[fmt] = out_dir / FILES[fmt]
        with torch.no_grad():
            (export_onnx if fmt == "onnx" else export_torchscript)(scorer, written[fmt])
    files = {**_earlier_files(out_dir / "export.json", describe(scorer, {})), **{f: FILES[f] for f in written}}
    write_json(out_dir / "export.json", describe(scorer, files))
    return written


def _earlier_files(path: Path, current: dict[str, Any]) -> dict[str, str]:
    """The files an existing export.json lists, when it describes the same inputs and outputs and
    the files are still there."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
        same = old["inputs"] == current["inputs"] and old["outputs"] == current["outputs"]
        files = dict(old["files"]) if same else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {f: name for f, name in files.items() if f in FILES and (path.parent / str(name)).is_file()}


def random_inputs(layout: InputLayout, rows: int, seed: int = 0) -> dict[str, Tensor]:
    """Valid encoded inputs at random: ids within each field's vocabulary, dense values ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    cat = torch.zeros((rows, len(layout.cat_sizes)), dtype=torch.long)
    for i, size in enumerate(layout.cat_sizes):
        cat[:, i] = torch.randint(0, size, (rows,), generator=g)
    width = max(layout.seq_lens, default=0)
    seq = torch.zeros((rows, len(layout.seq_sizes), width), dtype=torch.long)
    for i, (size, length) in enumerate(zip(layout.seq_sizes, layout.seq_lens)):
        seq[:, i, :length] = torch.randint(0, size, (rows, length), generator=g)
    given = {"cat": cat, "seq": seq, "dense": torch.randn((rows, layout.n_dense), generator=g)}
    return {name: given[INPUTS[name]] for name in input_names(layout)}


def run_exported(path: str | Path, fmt: str, inputs: dict[str, Tensor], outputs: Sequence[str]) -> dict[str, Any]:
    """Score ``inputs`` ({input name: tensor}, as ``input_names``) with an exported file through
    its runtime (onnxruntime or torch.jit); {output: numpy array} for the named ``outputs`` (all of
    them, in the order export.json lists them)."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise RunError("checking an ONNX export needs onnxruntime: pip install 'mtlrec[export]'") from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        values = session.run(list(outputs), {k: v.numpy() for k, v in inputs.items()})
    else:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 marks torch.jit deprecated
            values = [v.numpy() for v in torch.jit.load(str(path))(*inputs.values())]
    return dict(zip(outputs, values))


def max_difference(scorer: Scorer, path: str | Path, fmt: str, rows: int = 256, seed: int = 0) -> float:
    """The largest difference between the exported file's predictions and PyTorch's on ``rows``
    random encoded rows, each output's relative to max(1, its largest value)."""
    inputs = random_inputs(scorer.model.layout, rows, seed)
    with torch.no_grad():
        want = dict(zip(scorer.outputs, (v.numpy() for v in scorer(*inputs.values()))))
    got = run_exported(path, fmt, inputs, scorer.outputs)
    return max(
        float(np.max(np.abs(got[t] - want[t]), initial=0.0)) / max(1.0, float(np.max(np.abs(want[t]), initial=0.0)))
        for t in scorer.outputs
    )
