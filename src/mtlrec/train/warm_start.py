"""Warm start: a new run that begins where a complete run (the parent, e.g. yesterday's) ended,
on new data whose vocabularies grew (``Encoder.grow``).

The parent's weights go into the new model; its embedding tables grew at the end of each field
(new ids), so each table's known rows move to their field's new offset and the new rows keep the
fresh model's initialisation, as a new table's rows would. By default the optimizers' state (Adam's
moments and step counts; the row-wise optimizer's per-row bookkeeping) carries over the same way,
new rows with zero moments; ``reset_optimizer`` starts it afresh. The loss-weighting method's
state carries over. The new run's learning rate and other optimizer settings are its own config's.

The parent must have the same schema (features and tasks), model and weighting; the first
difference is a ConfigError naming it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtlrec.artifacts import COUNTS, load_tensors, read_run, read_yaml, run_info
from mtlrec.config import differences, parse_config
from mtlrec.data.encode import Encoder
from mtlrec.errors import ConfigError
from mtlrec.nn.embedding import FeatureEmbedding
from mtlrec.spec import InputLayout
from mtlrec.train.checkpoints import latest_checkpoint, load_checkpoint
from mtlrec.train.state import TrainState

Rows = tuple[Tensor, Tensor]  # (rows in the new table, the same rows in the parent's)


@dataclass
class Parent:
    """What a warm start takes from a complete run."""

    path: Path
    info: dict[str, Any]  # its run.json
    config: dict[str, Any]  # its resolved config (to_dict form)
    encoder: Encoder
    weights: dict[str, Tensor]
    train: dict[str, Any] | None  # its last checkpoint's train state (None: no checkpoint left)

    @property
    def weighting(self) -> dict[str, Tensor]:
        """The loss-weighting method's state at the end of the parent's training."""
        if self.train is not None:
            return self.train["weighting"]
        path = self.path / "weighting.safetensors"
        return load_tensors(path) if path.is_file() else {}

    @classmethod
    def load(cls, path: str | Path) -> "Parent":
        return read_run(path, cls._read)

    @classmethod
    def _read(cls, path: Path) -> "Parent":
        config = parse_config(read_yaml(path / "config.yaml") or {}, where=str(path / "config.yaml")).to_dict()
        last = latest_checkpoint(path)
        train = load_checkpoint(last)["train"] if last is not None else None
        encoder = Encoder.load(path / "encoder.json")
        if (path / COUNTS).is_file():  # absent: the vocabularies grow from what they hold
            encoder.load_counts(path / COUNTS)
        return cls(path, run_info(path), config, encoder, load_tensors(path / "model.safetensors"), train)

    @property
    def lineage(self) -> dict[str, Any]:
        """What run.json records of the parent."""
        return {"run": str(self.path.resolve()), "id": self.info.get("id")}

    def check(self, resolved: dict[str, Any]) -> None:
        """A ConfigError naming the first difference in schema, model or weighting from the new
        run's resolved config."""
        for part in ("features", "tasks"):  # positions matter too: tables, towers and weights follow them
            was, now = (_names(c.get("schema", {}).get(part)) for c in (self.config, resolved))
            if set(was) == set(now) and was != now:
                raise ConfigError(f"--init-from {self.path}: schema.{part} are in the order {now} here but "
                                  f"{was} in that run; list them in the same order")  # fmt: skip
        for section in ("schema", "model", "weighting"):
            found = differences(_by_name(self.config.get(section)), _by_name(resolved.get(section)), f"{section}.")
            if found:
                key, was, now = found[0]
                raise ConfigError(
                    f"--init-from {self.path}: {key} is {_show(now)} here but {_show(was)} in that run; a warm "
                    f"start needs the same schema, model and weighting (train may differ)"
                )

    def restore(self, state: TrainState, new_layout: InputLayout, *, reset_optimizer: bool) -> None:
        """Put the parent's weights (and optimizer and weighting state) into ``state``'s model,
        whose tables were built for ``new_layout``."""
        rows = grown_rows(state.model, self.encoder.layout(), new_layout)
        fresh = state.model.state_dict()
        state.model.load_state_dict(
            {k: _move_rows(v, rows[k], fresh[k].clone()) if k in rows else v for k, v in self.weights.items()}
        )
        if self.weighting:
            state.weighting.load_state_dict(self.weighting)
        if reset_optimizer or self.train is None:
            return
        parent = self.train["optimizers"]
        mine = state.optimizers.state_dict()  # this run's groups (lr, betas, ...) and no state yet
        if set(parent) != set(mine):
            raise ConfigError(
                f"--init-from {self.path}: its optimizer state is for train.embedding_update "
                f"{'rowwise' if 'rowwise' in parent else 'dense'}; use the same, or --reset-optimizer"
            )
        for kind, opt in mine.items():
            opt["state"] = {
                name: self._grown_state(s, rows.get(name), name, fresh) for name, s in parent[kind]["state"].items()
            }
        state.optimizers.load_state_dict(mine)

    def _grown_state(self, state: dict[str, Any], rows: Rows | None, name: str, fresh: dict[str, Tensor]) -> dict:
        """A parameter's optimizer state for the grown model: per-row tensors (a table's moments, the
        row-wise optimizer's ``last``) get the new rows, as zeros."""
        if rows is None:
            return state
        before, after = self.weights[name].shape[0], fresh[name].shape[0]
        grown = {}
        for key, v in state.items():
            per_row = torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == before
            grown[key] = _move_rows(v, rows, v.new_zeros((after, *v.shape[1:]))) if per_row else v
        return grown


def grown_rows(model: torch.nn.Module, old: InputLayout, new: InputLayout) -> dict[str, Rows]:
    """{parameter name: kept rows} of every embedding table of ``model`` (including those of task
    paths and single-task networks)."""
    out = {}
    for prefix, module in model.named_modules():
        if isinstance(module, FeatureEmbedding):
            for name, rows in module.grown_rows(old, new).items():
                out[f"{prefix}.{name}" if prefix else name] = rows
    return out


def _move_rows(old: Tensor, rows: Rows, into: Tensor) -> Tensor:
    """``into`` with the parent's rows ``old[rows[1]]`` written at ``rows[0]`` (on ``into``'s device:
    the parent's tensors come from files, on the CPU)."""
    into[rows[0].to(into.device)] = old[rows[1]].to(into.device)
    return into


def _by_name(section: Any) -> Any:
    """Lists of named entries (schema features, tasks) as {name: entry}, so differences name them."""
    if isinstance(section, dict):
        return {k: _by_name(v) for k, v in section.items()}
    if isinstance(section, list) and section and all(isinstance(x, dict) and "name" in x for x in section):
        return {x["name"]: x for x in section}
    return section


def _names(entries: Any) -> list[str]:
    return [x["name"] for x in entries or []]


def _show(value: Any) -> str:
    return "absent" if value is None else repr(value)
