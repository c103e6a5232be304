"""Predictor: a run directory -> encoder + model, scoring raw rows."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from mtlrec.artifacts import RUN_JSON, load_tensors, read_json, read_run, read_yaml
from mtlrec.config import ExperimentConfig, parse_config
from mtlrec.data.columns import Where
from mtlrec.data.encode import Encoder
from mtlrec.data.join import Joiner
from mtlrec.data.pieces import read_piece
from mtlrec.data.stream import Reader
from mtlrec.device import module_device, resolve_device
from mtlrec.errors import RunError
from mtlrec.evaluation import Advance, Metrics, evaluate_model, oracle_predictions, predict
from mtlrec.losses import output_predictions
from mtlrec.models import build_model
from mtlrec.models.base import MultiTaskModel
from mtlrec.rank.fusion import Fuser, default_fuser, load_fusion
from mtlrec.serve.columns import Column, ColumnEncoder


class Predictor:
    """A trained run ready to score: its config, encoder and model (in eval mode), and ``fuser``,
    the fusion that turns task predictions into one ranking score (by default the run's, read on
    first use with ``load_fusion``; pCTR only without a run directory)."""

    def __init__(
        self,
        config: ExperimentConfig,
        encoder: Encoder,
        model: MultiTaskModel,
        *,
        fuser: Fuser | None = None,
        run_dir: Path | None = None,
        run_info: dict | None = None,
    ) -> None:
        self.config = config
        self.encoder = encoder
        self.model = model.eval()
        self.run_dir = run_dir
        self.run_info = run_info or {}  # the run.json read with the other files (empty without a run directory)
        self._fuser = fuser
        self._columns: ColumnEncoder | None = None
        self.joiner: Joiner | None = None  # the run's side tables (data/join.py), if it was trained with any

    @property
    def tasks(self):
        """Every output: the schema's tasks and the model's derived ones (ESMM's click_and_purchase)."""
        return self.model.output_tasks

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> "Predictor":
        """The complete run in ``run_dir`` (never a half-written one: see ``artifacts.read_run``),
        its model on ``device`` (auto | cpu | cuda | cuda:N, or a torch.device); predictions come
        back as numpy arrays wherever it runs."""
        where = device if isinstance(device, torch.device) else resolve_device(device, key="device")
        return read_run(run_dir, lambda path: cls._read(path, where))

    @classmethod
    def _read(cls, run_dir: Path, device: torch.device = torch.device("cpu")) -> "Predictor":
        config = parse_config(read_yaml(run_dir / "config.yaml") or {}, where=str(run_dir / "config.yaml"))
        encoder = Encoder.load(run_dir / "encoder.json")
        model = build_model(config.model, encoder.layout(), encoder.schema.tasks)
        state = load_tensors(run_dir / "model.safetensors")
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
            raise RunError(f"{run_dir / 'model.safetensors'}: does not match the model in config.yaml ({first})") from None
        predictor = cls(config, encoder, model.to(device), run_dir=run_dir, run_info=read_json(run_dir / RUN_JSON))
        predictor.joiner = Joiner.load(run_dir)
        return predictor

    def joined(self, table: pa.Table, where: Where) -> pa.Table:
        """``table`` with the run's side tables joined on (the columns it has stay its own)."""
        return self.joiner(table, where) if self.joiner is not None else table

    def read(self) -> Reader:
        """How to read a piece of a directory or glob of rows: with the run's side tables joined on."""
        return self.joiner.reader(read_piece) if self.joiner is not None else read_piece

    @property
    def fuser(self) -> Fuser:
        if self._fuser is None:
            self._fuser = load_fusion(self.run_dir) if self.run_dir else default_fuser(self.encoder.schema.tasks)
        return self._fuser

    def predict(self, table: pa.Table, where: Where = "data", advance: Advance | None = None) -> dict[str, np.ndarray]:
        """{task: [N] or [N, K]} from raw rows (labels not needed; the run's side tables fill in the
        columns the rows lack by key); ``advance(rows)`` as batches are scored."""
        data = self.encoder.transform(self.joined(table, where), labels=False, where=where)
        return predict(self.model, data, self.config.train.eval_batch_size, advance)

    def score(self, columns: Mapping[str, Column], n: int) -> dict[str, np.ndarray]:
        """``predict`` for ``n`` rows given as Python values ({column: list, or Same(value)}), as a
        validated JSON request holds them: no arrow table, one forward pass without autograd."""
        if self._columns is None:
            self._columns = ColumnEncoder(self.encoder)
        batch = self._columns.encode(columns, n).to(module_device(self.model))
        with torch.inference_mode():
            out = output_predictions(self.model.output_tasks, self.model(batch), self.encoder.targets_)
            return {name: p.cpu().numpy() for name, p in out.items()}

    def evaluate(self, table: pa.Table, where: Where = "data", advance: Advance | None = None) -> dict[str, Metrics]:
        """{"data": metrics} plus {"oracle": metrics} when the rows carry ground truth; ``advance(rows)``
        as batches are scored."""
        table = self.joined(table, where)
        data = self.encoder.transform(table, where=where)
        preds = predict(self.model, data, self.config.train.eval_batch_size, advance)
        out = {"data": evaluate_model(self.model, preds, data)}
        oracle = oracle_predictions(table, self.model.tasks)
        if oracle is not None:
            out["oracle"] = evaluate_model(self.model, oracle, data)
        return out


def prediction_columns(
    tasks, preds: dict[str, np.ndarray], classes: Mapping[str, Sequence[str]] = {}
) -> dict[str, np.ndarray]:
    """One column per task ({task}), or per class/label of a multiclass/multilabel task: named by
    its class ({task}={class}, e.g. department=Dresses) where ``classes`` (``Encoder.classes_``)
    names them, else by its index ({task}_{k})."""
    cols: dict[str, np.ndarray] = {}
    for t in tasks:
        p = preds[t.name]
        if p.ndim == 1:
            cols[t.name] = p
            continue
        names = classes.get(t.name)
        cols.update({f"{t.name}={names[k]}" if names else f"{t.name}_{k}": p[:, k] for k in range(p.shape[1])})
    return cols
