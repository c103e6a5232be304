"""A corpus of hostile input, one table: bad data files, configs, run directories, command-line
arguments and HTTP payloads. Each case asserts a clear error (exit status 2 and one `error: ...`
line naming the file, row, key or field; or the documented 4xx JSON with a one-line message), no
traceback, and that nothing written before is lost: a `predict --out` file, an `evaluate --json`
file, a run directory that `train --overwrite` was pointed at, the run directory read.

tests/cli/test_errors.py has more cases of the same kinds (and happy paths); this table adds the
kinds it does not cover and repeats none of its inputs.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from mtlrec.cli.main import main
from mtlrec.data.synthetic import simulate


@dataclass
class Ctx:
    tmp: Path
    run: Path  # a copy of the session's trained run (a case may damage it)
    table: pa.Table  # 300 impressions of the trained run's world
    config: dict  # the tiny config


@dataclass
class Case:
    name: str
    make: Callable[[Ctx], list]  # -> argv; may write files
    needles: tuple[str, ...]  # what the error line must contain


def fingerprint(paths: list[Path]) -> dict[str, str]:
    """A hash of each file under ``paths`` (files, or directories walked), to compare before and after."""
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# -- data files: `mtlrec evaluate RUN FILE --json OLD` and `mtlrec predict RUN FILE --out OLD` -----------
def csv_text(table: pa.Table) -> str:
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            table = table.set_column(i, field.name, pc.binary_join(pc.cast(table[field.name], pa.list_(pa.string())), "|"))
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="none"))
    return buf.getvalue().decode()


def edit_cell(text: str, row: int, column: str, value: str) -> str:
    """The CSV ``text`` with data row ``row`` (from 1) of ``column`` set to ``value``."""
    lines = text.splitlines()
    header = [h.strip("\"") for h in lines[0].split(",")]
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def data_case(name: str, content: Callable[[Ctx], bytes | str], needles: tuple[str, ...], *,
              command: str = "evaluate", suffix: str = ".csv") -> Case:  # fmt: skip
    """A data file written by ``content``, read by ``command`` (evaluate: labels checked too)."""

    def make(ctx: Ctx) -> list:
        path = ctx.tmp / f"{name}{suffix}"
        data = content(ctx)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        if command == "evaluate":
            return ["evaluate", ctx.run, path, "--json", ctx.tmp / "old.json"]
        return ["predict", ctx.run, path, "--out", ctx.tmp / "old.csv"]

    return Case(f"data/{name}", make, needles)


def _ragged(ctx: Ctx, extra: bool) -> str:
    lines = csv_text(ctx.table).splitlines()
    lines[4] = lines[4] + ",surplus" if extra else ",".join(lines[4].split(",")[:-3])
    return "\n".join(lines) + "\n"


def _dup_header(ctx: Ctx) -> str:
    lines = csv_text(ctx.table).splitlines()
    return "\n".join([lines[0] + ",brand", *(line + ",7" for line in lines[1:])]) + "\n"


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _set_column(table: pa.Table, name: str, values: list) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, pa.array(values))


DATA = [
    data_case("ragged-long-row", lambda c: _ragged(c, True), ("ragged-long-row.csv", "Expected", "columns, got")),
    data_case("ragged-short-row", lambda c: _ragged(c, False), ("ragged-short-row.csv", "columns, got")),
    data_case("header-only", lambda c: csv_text(c.table).splitlines()[0] + "\n", ("header-only.csv", "header but no rows"),
              command="predict"),
    data_case("duplicate-column", _dup_header, ("duplicate-column.csv", "'brand' appear more than once in the header")),
    data_case("infinite-number", lambda c: edit_cell(csv_text(c.table), 3, "price", "inf"),
              ("column 'price' in infinite-number.csv row 3: expected a finite number, got inf",), command="predict"),
    data_case("nan-label", lambda c: edit_cell(csv_text(c.table), 5, "click", "NaN"),
              ("column 'click' in nan-label.csv row 5: expected a 0/1 label, got a missing value",)),
    data_case("negative-label", lambda c: edit_cell(csv_text(c.table), 2, "click", "-1"),
              ("column 'click' in negative-label.csv row 2: expected a 0/1 label, got -1",)),
    data_case("fractional-label", lambda c: edit_cell(csv_text(c.table), 9, "click", "0.5"),
              ("column 'click' in fractional-label.csv row 9: expected a 0/1 label, got 0.5",)),
    data_case("fractional-class", lambda c: edit_cell(csv_text(c.table), 4, "user_segment", "1.5"),
              ("column 'user_segment' in fractional-class.csv row 4: expected a class index in 0..3, got 1.5",)),
    data_case("latin-1-category", lambda c: edit_cell(csv_text(c.table), 6, "device", "caf\xe9").encode("latin-1"),
              ("column 'device' in latin-1-category.csv row 6: expected UTF-8 text, got b'caf\\xe9'",), command="predict"),
    data_case("latin-1-number", lambda c: edit_cell(csv_text(c.table), 6, "price", "9\xe9").encode("latin-1"),
              ("column 'price' in latin-1-number.csv", "expected numbers")),
    data_case("binary-garbage", lambda c: b"\x00\x01\x02\xff" * 64, ("binary-garbage.csv", "cannot read")),
    data_case("corrupt-gzip", lambda c: b"\x1f\x8b\x08\x00" + b"not deflate data" * 20, ("corrupt-gzip.csv.gz", "cannot read"),
              suffix=".csv.gz"),
    data_case("truncated-gzip", lambda c: gzip.compress(csv_text(c.table).encode())[:400],
              ("truncated-gzip.csv.gz", "cannot read"), suffix=".csv.gz", command="predict"),
    data_case("corrupt-parquet", lambda c: b"PAR1" + b"\x00" * 64 + b"PAR1", ("corrupt-parquet.parquet", "cannot read"),
              suffix=".parquet"),
    data_case("truncated-parquet", lambda c: _parquet(c.table)[:2000], ("truncated-parquet.parquet", "cannot read"),
              suffix=".parquet", command="predict"),
    data_case("empty-parquet", lambda c: b"", ("empty-parquet.parquet", "the file is empty"), suffix=".parquet"),
    data_case("parquet-infinity",
              lambda c: _parquet(_set_column(c.table, "item_rating", [1.0, float("-inf")] + [2.0] * (c.table.num_rows - 2))),
              ("column 'item_rating' in parquet-infinity.parquet row 2: expected a finite number, got -inf",),
              suffix=".parquet"),
    data_case("parquet-label-text",
              lambda c: _parquet(_set_column(c.table, "purchase", ["yes"] * c.table.num_rows)),
              ("column 'purchase' in parquet-label-text.parquet row 1", "'yes'"), suffix=".parquet"),
]  # fmt: skip


def _directory_as_data(ctx: Ctx) -> list:
    (ctx.tmp / "a-directory.csv").mkdir()
    return ["predict", ctx.run, ctx.tmp / "a-directory.csv", "--out", ctx.tmp / "old.csv"]


DATA.append(Case("data/a-directory", _directory_as_data, ("a-directory.csv",)))


# -- configs: `mtlrec train CONFIG --out OLD_RUN --overwrite` (a complete run that must survive) -----------
SMALL_SCHEMA = {
    "features": [{"name": "user_id", "kind": "categorical"}, {"name": "price", "kind": "numeric"}],
    "tasks": [{"name": "click", "kind": "binary"}, {"name": "purchase", "kind": "binary", "where": "click"}],
}


def config_case(name: str, change: Callable[[dict], object], needles: tuple[str, ...]) -> Case:
    """The tiny config changed by ``change`` (which edits it, or returns the file's text or bytes)."""

    def make(ctx: Ctx) -> list:
        config = copy.deepcopy(ctx.config)
        written = change(config)
        path = ctx.tmp / f"{name}.yaml"
        if isinstance(written, bytes):
            path.write_bytes(written)
        else:
            path.write_text(written if isinstance(written, str) else yaml.safe_dump(config))
        return ["train", path, "--out", ctx.run, "--overwrite"]

    return Case(f"config/{name}", make, (f"{name}.yaml", *needles))


def put(key: str, value: object) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    return change


def tasks(*specs: dict) -> Callable[[dict], None]:
    return put("schema", {**SMALL_SCHEMA, "tasks": list(specs)})


CONFIGS = [
    config_case("epochs-as-text", put("train.epochs", "many"), ("train.epochs", "valid integer")),
    config_case("epochs-as-list", put("train.epochs", [1, 2]), ("train.epochs", "valid integer")),
    config_case("unknown-section", put("trian", {"epochs": 1}), ("trian: unknown key",)),
    config_case("misspelt-model-key", put("model.embeding_dim", 8), ("unknown key 'embeding_dim'",)),
    config_case("batch-size-zero", put("train.batch_size", 0), ("train.batch_size", "greater than or equal to 1")),
    config_case("negative-lr", put("train.lr", -0.1), ("train.lr", "greater than 0")),
    config_case("valid-share-above-1", put("data.split.valid", 1.5), ("data.split.valid", "less than 1")),
    config_case("no-rows-left-to-train", lambda c: c["data"].update(split={"valid": 0.6, "test": 0.6}),
                ("data.split: valid + test must leave rows for training",)),
    config_case("task-named-twice", tasks({"name": "click", "kind": "binary"}, {"name": "click", "kind": "binary"}),
                ("task name(s) used twice: click",)),
    config_case("sample-spaces-loop", tasks({"name": "click", "kind": "binary", "where": "purchase"},
                                            {"name": "purchase", "kind": "binary", "where": "click"}),
                ("the sample spaces loop (click where purchase, purchase where click)",)),
    config_case("where-a-regression", tasks({"name": "click", "kind": "binary"}, {"name": "order_value", "kind": "regression"},
                                            {"name": "purchase", "kind": "binary", "where": "order_value"}),
                ("where 'order_value' must name a binary label, but task 'order_value' is regression",)),
    config_case("feature-reads-a-label",
                put("schema", {**SMALL_SCHEMA, "features": [*SMALL_SCHEMA["features"], {"name": "click", "kind": "numeric"}]}),
                ("feature 'click' reads column 'click', the label of task 'click'",)),
    config_case("multiclass-of-one-class", tasks({"name": "click", "kind": "multiclass", "n_classes": 1}),
                ("task 'click': a multiclass task needs n_classes >= 2",)),
    config_case("unknown-task-kind", tasks({"name": "click", "kind": "ternary"}), ("schema.tasks.0.kind",)),
    config_case("not-utf-8", lambda c: b"train:\n  epochs: \xff\n", ("not UTF-8 text (byte 17",)),
]  # fmt: skip


# -- run directories: `mtlrec evaluate RUN` and `mtlrec serve RUN` ----------------------------------------
def run_case(name: str, damage: Callable[[Path], Path | None], needles: tuple[str, ...], command: str = "evaluate") -> Case:
    def make(ctx: Ctx) -> list:
        damaged = damage(ctx.run)
        run = damaged if isinstance(damaged, Path) else ctx.run
        if command == "serve":
            return ["serve", run, "--port", free_port()]
        return ["evaluate", run, "--json", ctx.tmp / "old.json"]

    return Case(f"run/{name}-{command}", make, needles)


def _edit_json(path: Path, change: Callable[[object], object]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _edit_yaml(path: Path, change: Callable[[dict], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def _file_for_dir(run: Path) -> Path:
    (run.parent / "run-file").write_text("not a directory")
    return run.parent / "run-file"


def _other_weights() -> bytes:
    """A valid safetensors file of another model (one tensor named 'x')."""
    import torch
    from safetensors.torch import save

    return save({"x": torch.zeros(3)})


def _drop_vocabulary_entry(data: dict) -> dict:
    data["vocabularies"]["brand"] = data["vocabularies"]["brand"][:-5]  # the brand table shrinks: weights no longer fit
    return data


RUNS = [
    run_case("missing", lambda r: r.parent / "no-such-run", ("no-such-run", "not a run directory"), "serve"),
    run_case("a-file", _file_for_dir, ("run-file", "not a run directory")),
    run_case("empty-directory", lambda r: (r.parent / "empty").mkdir() or r.parent / "empty",
             ("empty", "not a complete run directory (missing run.json, config.yaml, encoder.json, model.safetensors)"), "serve"),
    run_case("unfinished", lambda r: (r / "run.json").unlink(), ("no run.json", "--resume")),
    run_case("run-json-garbage", lambda r: (r / "run.json").write_text("{\"format\": "), ("run.json: not valid JSON",), "serve"),
    run_case("run-json-a-list", lambda r: (r / "run.json").write_text("[1]"), ("run.json: unsupported run format",)),
    run_case("future-format", lambda r: _edit_json(r / "run.json", lambda d: {**d, "format": 2}),
             ("run.json: unsupported run format", "expected format 1"), "serve"),
    run_case("foreign-config", lambda r: _edit_yaml(r / "config.yaml", lambda d: d["model"].update(name="mmoe")),
             ("model.safetensors: does not match the model in config.yaml",)),
    run_case("foreign-encoder", lambda r: _edit_json(r / "encoder.json", _drop_vocabulary_entry),
             ("model.safetensors: does not match the model in config.yaml",), "serve"),
    run_case("foreign-weights", lambda r: (r / "model.safetensors").write_bytes(_other_weights()),
             ("model.safetensors: does not match the model in config.yaml",)),
    run_case("truncated-weights", lambda r: (r / "model.safetensors").write_bytes((r / "model.safetensors").read_bytes()[:300]),
             ("model.safetensors: not a valid safetensors file",), "serve"),
    run_case("config-not-utf-8", lambda r: (r / "config.yaml").write_bytes(b"model: \xff\n"), ("config.yaml: not valid YAML",)),
]  # fmt: skip


# -- command-line arguments ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(ctx: Ctx) -> list:
    ctx.held = socket.socket()  # closed with the test's tmp objects
    ctx.held.bind(("127.0.0.1", 0))
    ctx.held.listen()
    return ["serve", ctx.run, "--port", ctx.held.getsockname()[1]]


def serve_case(name: str, args: tuple, needles: tuple[str, ...]) -> Case:
    return Case(f"cli/serve-{name}", lambda ctx: ["serve", ctx.run, *args], needles)


CLI = [
    serve_case("negative-port", ("--port", "-1"), ("--port: expected 1..65535, got -1",)),
    serve_case("port-not-a-number", ("--port", "http"), ("Invalid value for '--port'",)),
    serve_case("workers-zero", ("--workers", "0"), ("--workers: expected a number >= 1, got 0",)),
    serve_case("unknown-backend", ("--backend", "tflite"), ("--backend: expected one of torch, onnx, got 'tflite'",)),
    serve_case("short-admin-token", ("--admin-token", "secret"), ("--admin-token: expected at least 16 printable",)),
    serve_case("zero-request-timeout", ("--request-timeout", "0"), ("--request-timeout: expected a number of seconds > 0",)),
    serve_case("missing-runs-root", ("--admin-token", "x" * 20, "--runs-root", "/no/such/dir"),
               ("--runs-root /no/such/dir: no such directory",)),
    serve_case("unknown-host", ("--host", "no-such-host.invalid", "--port", "8999"),
               ("--host no-such-host.invalid --port 8999: cannot listen there",)),
    Case("cli/serve-port-in-use", _port_in_use, ("cannot listen there (Address already in use)",)),
    Case("cli/serve-without-run", lambda ctx: ["serve"], ("Missing argument 'RUN'",)),
    Case("cli/predict-missing-data", lambda ctx: ["predict", ctx.run, ctx.tmp / "gone.csv", "--out", ctx.tmp / "old.csv"],
         ("gone.csv: no such file",)),
    Case("cli/export-unknown-format", lambda ctx: ["export", ctx.run, "--format", "tflite", "--out", ctx.tmp / "x"],
         ("export format 'tflite'",)),
]  # fmt: skip

CASES = DATA + CONFIGS + RUNS + CLI
USAGE_ERRORS = {"cli/serve-port-not-a-number", "cli/serve-without-run"}  # answered by click before mtlrec runs


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return simulate(rows=300, users=500, items=300, seed=4)


@pytest.fixture
def ctx(tmp_path, trained_run, table, tiny_config):
    run = shutil.copytree(trained_run, tmp_path / "runs" / "run", ignore=shutil.ignore_patterns("checkpoints"))
    (tmp_path / "old.csv").write_text("written before\n")
    (tmp_path / "old.json").write_text('{"written": "before"}\n')
    context = Ctx(tmp_path, run, table, tiny_config)
    yield context
    if hasattr(context, "held"):
        context.held.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_line_and_loses_nothing(case, ctx, capsys):
    argv = [str(a) for a in case.make(ctx)]
    guarded = [ctx.tmp / "old.csv", ctx.tmp / "old.json", ctx.run]
    before = fingerprint(guarded)
    capsys.readouterr()
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    if case.name in USAGE_ERRORS:  # click's: a usage line and a hint, then the error
        assert lines[0].startswith("Usage: mtlrec ") and lines[-1].startswith("Error: "), err
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in case.needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert fingerprint(guarded) == before, "a file written before was changed"


def test_the_corpus_has_every_kind_and_at_least_40_cases():
    kinds = {c.name.split("/")[0] for c in CASES}
    assert kinds == {"data", "config", "run", "cli"} and len(CASES) + len(HTTP) >= 40


# -- HTTP payloads: the documented 4xx JSON, one line naming the field; the service keeps answering ------
CONTEXT = ("device", "hour", "user_price_pref", "user_activity", "user_cat_clicks", "recent_categories")


def nested(depth: int) -> bytes:
    return b'{"rows": ' + b"[" * depth + b"]" * depth + b"}"


HTTP = [
    ("deeply-nested", "/v1/score", nested(100_000), 422, "body: "),
    ("duplicate-keys", "/v1/recommend", b'{"k": 1, "k": "x", "candidates": []}', 422, ""),
    ("k-beyond-int64", "/v1/recommend", b'{"k": 99999999999999999999999, "candidates": []}', 422, ""),
    ("k-true", "/v1/recommend", b'{"k": true, "candidates": [{"id": 1}]}', 422, "k: "),
    ("id-null", "/v1/recommend", b'{"candidates": [{"id": null}]}', 422, "candidates[0].id: "),
    ("id-float", "/v1/recommend", b'{"candidates": [{"id": 1.5}]}', 422, "candidates[0].id: "),
    ("rows-of-strings", "/v1/score", b'{"rows": ["a", "b"]}', 422, "rows[0]: "),
    ("candidate-a-list", "/v1/recommend", b'{"candidates": [[1, 2]]}', 422, "candidates[0]: "),
    ("empty-body", "/v1/score", b"", 422, "body: "),
    ("json-null", "/v1/score", b"null", 422, "body: "),
    ("lone-surrogate", "/v1/score", b'{"rows": [{"brand": "\\ud800"}]}', 422, "rows[0]"),
    ("nul-in-key", "/v1/score", b'{"rows": [{"br\\u0000and": 1}]}', 422, "rows[0]"),
]  # fmt: skip


@pytest.fixture(scope="module")
def client(trained_run):
    import warnings

    from mtlrec.serve.app import create_app
    from mtlrec.serve.schemas import Limits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(create_app(trained_run, Limits(max_body_bytes=1_000_000)))


@pytest.mark.parametrize("name, path, body, status, start", HTTP, ids=[h[0] for h in HTTP])
def test_bad_payload_is_the_documented_4xx(client, name, path, body, status, start):
    got = client.post(path, content=body, headers={"content-type": "application/json"})
    assert got.status_code == status, got.text
    answer = got.json()
    assert set(answer) >= {"detail", "message"} and "\n" not in answer["message"]
    assert answer["message"].startswith(start), answer["message"]
    assert "Traceback" not in got.text
    assert client.get("/v1/health").status_code == 200
