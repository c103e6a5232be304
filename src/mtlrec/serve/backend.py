"""What runs the model in the service: PyTorch (the run's modules) or onnxruntime (the same model
exported to ONNX when the service loads the run, and checked equal to PyTorch on random rows before
it serves). Either one takes the encoded inputs of a request and returns each output's predictions;
both are safe to call from several threads at once, and run each call on the calling thread.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from mtlrec.data.batches import TensorBatch
from mtlrec.device import module_device
from mtlrec.errors import ConfigError, RunError
from mtlrec.export import INPUTS, Scorer, random_inputs
from mtlrec.losses import output_predictions
from mtlrec.models.base import MultiTaskModel

BACKENDS = ("torch", "onnx")
TOLERANCE = 1e-5  # the largest difference from PyTorch an ONNX session may have (as `mtlrec export`)
CHECK_ROWS = 64  # random encoded rows the ONNX session is checked on at load


class Backend(Protocol):
    name: str

    def __call__(self, batch: TensorBatch) -> dict[str, np.ndarray]:
        """{output: [B] or [B, K] predictions} of the batch's rows."""
        ...


class TorchBackend:
    """The run's PyTorch model, under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model: MultiTaskModel, targets: dict[str, tuple[float, float]]) -> None:
        self.model = model.eval()
        self.targets = targets
        self.device = module_device(model)  # each request's rows go there; its predictions come back

    def __call__(self, batch: TensorBatch) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = output_predictions(self.model.output_tasks, self.model(batch.to(self.device)), self.targets)
            return {name: p.cpu().numpy() for name, p in out.items()}


class OnnxBackend:
    """The model exported to ONNX in memory, run by onnxruntime with one thread per call (the
    service runs calls side by side on its own threads)."""

    name = "onnx"

    def __init__(self, model: MultiTaskModel, targets: dict[str, tuple[float, float]]) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("--backend onnx needs onnxruntime: pip install 'mtlrec[export]'") from None
        if module_device(model).type != "cpu":
            raise ConfigError(f"--backend onnx runs on the CPU (onnxruntime's CPU provider); the model is on "
                              f"{module_device(model)}: use --device cpu, or --backend torch")  # fmt: skip
        from mtlrec.export import onnx_program

        self.scorer = Scorer(model, targets).eval()
        with torch.no_grad():
            proto = onnx_program(self.scorer).model_proto.SerializeToString()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
        self.inputs = self.scorer.inputs
        self.outputs = list(self.scorer.outputs)

    def __call__(self, batch: TensorBatch) -> dict[str, np.ndarray]:
        feed = {name: getattr(batch, INPUTS[name]).numpy() for name in self.inputs}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))

    def max_difference(self, rows: int = CHECK_ROWS, seed: int = 0) -> float:
        """The largest difference from PyTorch's predictions on ``rows`` random encoded rows, each
        output's relative to max(1, its largest value) (as ``mtlrec.export.max_difference``)."""
        inputs = random_inputs(self.scorer.model.layout, rows, seed)
        with torch.inference_mode():
            want = dict(zip(self.outputs, (v.numpy() for v in self.scorer(*inputs.values()))))
        got = self.session.run(self.outputs, {k: v.numpy() for k, v in inputs.items()})
        return max(
            float(np.max(np.abs(g - want[t]), initial=0.0)) / max(1.0, float(np.max(np.abs(want[t]), initial=0.0)))
            for t, g in zip(self.outputs, got)
        )


def load_backend(name: str, model: MultiTaskModel, targets: dict[str, tuple[float, float]]) -> Backend:
    """The backend ``name`` for ``model``; an ONNX one is checked equal to PyTorch first."""
    if name == "torch":
        return TorchBackend(model, targets)
    if name != "onnx":
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got '{name}'")
    backend = OnnxBackend(model, targets)
    diff = backend.max_difference()
    if not diff <= TOLERANCE:
        raise RunError(
            f"the ONNX export of {type(model).__name__} differs from PyTorch by {diff:.3g} on {CHECK_ROWS} random "
            f"rows (more than {TOLERANCE:g}); serve it with --backend torch"
        )
    return backend
