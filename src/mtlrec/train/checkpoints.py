"""Checkpoints: a train state written as one directory of two files, and found again.

``RUN/checkpoints/step-0000000123/`` holds ``state.safetensors`` (every tensor of the state) and
``state.json`` (everything else: numbers, strings, lists, with a reference in place of each tensor).
No pickle: the nested state is split into tensors and JSON by ``flatten`` and put back together by
``unflatten``, which keeps what JSON would lose (tuples, integer dictionary keys, NaN and
infinities, numpy arrays).

A checkpoint is written under a temporary name, its files synced, then renamed into place, so a
directory named ``step-*`` is always complete: a crash while writing leaves a temporary directory
(removed by the next save) and the previous checkpoint as it was. The last ``keep`` are kept.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlrec.artifacts import fsync_path
from mtlrec.errors import RunError

DIR = "checkpoints"
PREFIX = "step-"
FORMAT = 1


def flatten(obj: Any, tensors: dict[str, torch.Tensor] | None = None, path: str = "") -> Any:
    """A JSON-ready copy of ``obj`` with every tensor moved into ``tensors`` (keyed by its path)."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        return {"$tensor": _store(tensors, path, obj.detach().cpu().contiguous())}
    if isinstance(obj, np.ndarray):
        return {"$ndarray": _store(tensors, path, torch.from_numpy(np.ascontiguousarray(obj)))}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"$dict": {k: flatten(v, tensors, f"{path}.{k}") for k, v in obj.items()}}
        return {"$items": [[k, flatten(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
        return {"$tuple": items} if isinstance(obj, tuple) else items
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"$float": repr(obj)}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return flatten(obj.item(), tensors, path)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at '{path}'")


def _store(tensors: dict[str, torch.Tensor], path: str, tensor: torch.Tensor) -> str:
    key = path or "_"
    while key in tensors:  # two paths that read the same ('a.b' in a dict, or b inside a)
        key += "'"
    tensors[key] = tensor
    return key


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of ``flatten``."""
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    (tag, value), = obj.items()
    if tag == "$tensor":
        return tensors[value]
    if tag == "$ndarray":
        return tensors[value].numpy()
    if tag == "$dict":
        return {k: unflatten(v, tensors) for k, v in value.items()}
    if tag == "$items":
        return {k: unflatten(v, tensors) for k, v in value}
    if tag == "$tuple":
        return tuple(unflatten(v, tensors) for v in value)
    if tag == "$float":
        return float(value)
    raise ValueError(f"unknown tag {tag!r}")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / DIR


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    root = checkpoint_dir(run_dir)
    found = [p for p in root.glob(PREFIX + "*") if p.is_dir()] if root.is_dir() else []
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], *, keep: int) -> Path:
    """Write ``state`` as checkpoint ``step`` of ``run_dir`` (replacing one of the same step), then
    remove all but the newest ``keep``."""
    from safetensors.torch import save_file

    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # a save that died part-way
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"format": FORMAT, "step": step, "state": skeleton}))
    for name in ("state.safetensors", "state.json"):
        fsync_path(tmp / name)
    final = root / f"{PREFIX}{step:010d}"
    if final.exists():  # a resumed run passing the step again: the new one replaces it
        old = root / f".tmp-{uuid.uuid4().hex[:12]}"
        final.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(final)
    fsync_path(root)
    prune(run_dir, keep)
    return final


def prune(run_dir: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints (all of them for keep = 0)."""
    found = checkpoints(run_dir)
    for path in found[: max(len(found) - keep, 0)]:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, as ``save_checkpoint`` was given it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / "state.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
        return unflatten(meta["state"], load_file(str(path / "state.safetensors")))
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise RunError(f"{path}: not a readable checkpoint ({err})") from None
