"""Atomic writes, standard JSON, safetensors and run-directory checks."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from mtlrec.artifacts import (
    append_jsonl,
    atomic_path,
    check_run_dir,
    load_tensors,
    read_history,
    read_json,
    read_yaml,
    save_tensors,
    to_json,
    write_json,
    write_text,
)
from mtlrec.errors import RunError


def listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- atomic writes -------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            tmp.write_text("half of the new cont")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert listing(tmp_path) == ["metrics.json"]


def test_an_interrupted_write_is_cleaned_up_too(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old weights")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"new")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old weights"
    assert listing(tmp_path) == ["model.safetensors"]


def test_a_failing_tensor_save_keeps_the_old_weights(tmp_path):
    path = tmp_path / "model.safetensors"
    save_tensors(path, {"w": torch.ones(3)})
    with pytest.raises(AttributeError):
        save_tensors(path, {"w": torch.zeros(3), "bad": "not a tensor"})
    assert torch.equal(load_tensors(path)["w"], torch.ones(3))
    assert listing(tmp_path) == ["model.safetensors"]


def test_a_successful_write_replaces_the_file_and_creates_directories(tmp_path):
    path = tmp_path / "new" / "dir" / "config.yaml"
    write_text(path, "a: 1\n")
    write_text(path, "a: 2\n")
    assert read_yaml(path) == {"a": 2}
    assert listing(path.parent) == ["config.yaml"]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    """Like open(path, 'w'): what the umask allows, so other users and services can read the
    predictions and run files (a temporary file from mkstemp alone would be 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text(tmp_path / "atomic.txt", "x")
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask


# -- JSON ----------------------------------------------------------------------------------------
def test_non_finite_numbers_become_null():
    obj = {"auc": float("nan"), "x": [1.5, float("inf"), (float("-inf"), 2)], "n": 3, "s": "nan"}
    text = to_json(obj)
    assert json.loads(text) == {"auc": None, "x": [1.5, None, [None, 2]], "n": 3, "s": "nan"}
    assert "NaN" not in text and "Infinity" not in text


def test_write_json_is_standard_json(tmp_path):
    write_json(tmp_path / "m.json", {"click": {"gauc": float("nan"), "auc": 0.75}})

    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=reject) == {"click": {"gauc": None, "auc": 0.75}}
    assert read_json(tmp_path / "m.json") == {"click": {"gauc": None, "auc": 0.75}}


def test_history_lines(tmp_path):
    append_jsonl(tmp_path / "history.jsonl", {"epoch": 1, "loss": float("nan")})
    append_jsonl(tmp_path / "history.jsonl", {"epoch": 2, "loss": 0.5})
    assert read_history(tmp_path) == [{"epoch": 1, "loss": None}, {"epoch": 2, "loss": 0.5}]
    with open(tmp_path / "history.jsonl", "a") as fh:
        fh.write("{broken\n")
    with pytest.raises(RunError, match=r"history.jsonl line 3: not valid JSON"):
        read_history(tmp_path)
    assert read_history(tmp_path / "elsewhere") == []


@pytest.mark.parametrize(
    "reader, content, message",
    [
        (read_json, "{not json", "not valid JSON"),
        (read_json, None, "missing"),
        (read_yaml, "a: [1,\n", "not valid YAML"),
        (read_yaml, None, "missing"),
        (load_tensors, "garbage bytes, not safetensors", "not a valid safetensors file"),
        (load_tensors, None, "missing"),
    ],
)
def test_unreadable_run_files_are_run_errors_naming_the_file(tmp_path, reader, content, message):
    path = tmp_path / "file"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RunError, match=message) as err:
        reader(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)


def test_tensors_round_trip(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_tensors(tmp_path / "t.safetensors", tensors)
    back = load_tensors(tmp_path / "t.safetensors")
    assert back.keys() == tensors.keys()
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)


# -- run directory -------------------------------------------------------------------------------
def make_run(path, **run_json) -> None:
    write_json(path / "run.json", {"format": 1, **run_json})
    for name in ("config.yaml", "encoder.json", "model.safetensors"):
        (path / name).write_text("x")


def test_check_run_dir(tmp_path):
    with pytest.raises(RunError, match="no such directory"):
        check_run_dir(tmp_path / "nope")
    make_run(tmp_path)
    assert check_run_dir(tmp_path) == tmp_path
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "encoder.json").unlink()
    with pytest.raises(RunError, match=r"missing encoder.json, model.safetensors"):
        check_run_dir(tmp_path)


def test_check_run_dir_rejects_other_formats(tmp_path):
    make_run(tmp_path, format=99)
    with pytest.raises(RunError, match=r"run.json: unsupported run format"):
        check_run_dir(tmp_path)
