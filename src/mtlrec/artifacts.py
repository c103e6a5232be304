"""The run directory and atomic file writes. Nothing here loads pickles: weights are safetensors,
everything else JSON or YAML.

A run directory holds:
  run.json          format version, mtlrec version, model name, the run's id, the data it was
                    trained on, the run it started from, and the device and precision it trained
                    with (``trained_on``); written last: a run directory is complete exactly when
                    it has run.json
  config.yaml       the resolved experiment config (schema included)
  encoder.json      the fitted encoder
  counts.json       every categorical value seen in training, with its count (for a warm start)
  model.safetensors the best weights
  weighting.safetensors the loss-weighting method's state (when it has any)
  metrics.json      {"valid": {task: {metric: value}}, "test": ..., "oracle": {"valid": ..., "test": ...}}
  history.jsonl     one JSON object per epoch
  diagnostics.json  {"test": {output: reliability curve (binary) or residuals (regression)}}, what
                    the report plots (older runs lack it: their report says so)
  report.html       the HTML report (``mtlrec report``), when one was written
  checkpoints/      the train state every train.checkpoint_every steps and at each epoch's end
  .lock             the pid of the process writing the directory, while it writes

A run that starts writing a directory removes run.json first and writes it again last, with a new
id. ``read_run`` reads run.json before and after reading the other files, so it never returns a
mix of two runs' files (or a half-written run) without noticing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import yaml

from mtlrec.errors import RunError

FORMAT = 1
RUN_JSON = "run.json"
COUNTS = "counts.json"  # every categorical value seen, with its count (what a warm start grows from)
RUN_FILES = (RUN_JSON, "config.yaml", "encoder.json", "model.safetensors")
DIAGNOSTICS = "diagnostics.json"  # binned test predictions: reliability curves and residuals (metrics/curves.py)
REPORT = "report.html"  # the HTML report (mtlrec.report)
LOCK = ".lock"  # the pid of the process writing the run directory, while it writes


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` while a run writes the directory, so that two runs cannot interleave
    their files. A lock held by a live process is a RunError; one left by a process that died is
    taken over."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None:
                raise RunError(
                    f"{run_dir}: another run (process {holder}) is writing this directory ({path}); "
                    f"wait for it to end or choose another --out"
                ) from None
            path.unlink(missing_ok=True)  # its process is gone
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> int | None:
    """The pid in a lock file if that process is alive, else None."""
    try:
        pid = int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid if pid > 0 else None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename, on
    failure it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    # 0o666 minus the umask, as open(path, "w") gives (mkstemp's files are 0600: unreadable to others)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _finite(obj: Any) -> Any:
    """NaN and infinities -> None, so the JSON is standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, to_json(obj, indent=2) + "\n")


def append_jsonl(path: str | Path, obj: Any) -> None:
    with open(path, "a") as fh:
        fh.write(to_json(obj) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: not valid JSON ({err})") from None


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None


def save_tensors(path: str | Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))  # CPU tensors on disk


def load_tensors(path: str | Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{path}: not a valid safetensors file ({err})") from None


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "history.jsonl"
    rows = []
    for i, line in enumerate(path.read_text().splitlines() if path.exists() else []):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise RunError(f"{path} line {i + 1}: not valid JSON") from None
    return rows


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    run_info(run_dir)
    return run_dir


def run_info(run_dir: Path) -> dict[str, Any]:
    """run.json of a complete run directory (a RunError naming what is missing otherwise)."""
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a run directory (no such directory)")
    if not (run_dir / RUN_JSON).is_file() and (run_dir / "config.yaml").is_file():
        raise RunError(
            f"{run_dir}: not a complete run directory (no {RUN_JSON}: its training is running or stopped "
            f"before the end; `mtlrec train CONFIG --out {run_dir} --resume` continues it)"
        )
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise RunError(f"{run_dir}: not a complete run directory (missing {', '.join(missing)})")
    info = read_json(run_dir / RUN_JSON)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise RunError(f"{run_dir / RUN_JSON}: unsupported run format {info!r}; expected format {FORMAT}")
    return info


T = TypeVar("T")


def read_run(run_dir: str | Path, read: Callable[[Path], T]) -> T:
    """``read(run_dir)`` of a complete run, checked to have seen one run's files: run.json is read
    before and after, and must not have changed (a run that rewrites the directory removes it first
    and writes it anew, with a new id, when it ends)."""
    run_dir = Path(run_dir)
    before = run_info(run_dir)
    result = read(run_dir)
    try:
        after = read_json(run_dir / RUN_JSON)
    except RunError:
        after = None
    if after != before:
        raise RunError(f"{run_dir}: another run rewrote this directory while it was read; try again when it ends")
    return result


def begin_run(run_dir: Path) -> None:
    """Mark ``run_dir`` as being written: from now on it is not a complete run."""
    (run_dir / RUN_JSON).unlink(missing_ok=True)
    fsync_path(run_dir)


def complete_run(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write run.json, with a new id: the run directory is complete. Returns what was written."""
    info = {"format": FORMAT, "mtlrec": _version(), "id": uuid.uuid4().hex, **info}
    write_json(run_dir / RUN_JSON, info)
    fsync_path(run_dir)
    return info


def fsync_path(path: Path) -> None:
    """Make a file's content, or a directory's entries (renames, removals), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version() -> str:
    import mtlrec

    return mtlrec.__version__


def placement_text(record: dict[str, Any]) -> str:
    """run.json's ``trained_on`` in words: 'cuda:0 (NVIDIA H200), precision bfloat16, 2 processes (torchrun)'."""
    processes = f", {record['processes']} processes (torchrun)" if record.get("processes") else ""
    return f"{record['device']} ({record['device_name']}), precision {record['precision']}{processes}"
