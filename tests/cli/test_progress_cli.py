"""Progress on the command line, in-process: outside a terminal, train writes exactly one line per
epoch on stderr (as logs and CI have always shown it); --quiet writes nothing there but errors; on a
terminal (a stream that says it is one) every long command draws a bar with its rate and time left."""

from __future__ import annotations

import io
import json
import math
import re
import sys

import pytest
import yaml

from mtlrec.cli.main import main

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SMALL = ["--users", "500", "--items", "300"]  # the session's trained run's world (conftest.SIMULATION)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def cli(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def on_terminal(monkeypatch) -> Terminal:
    """From now on stderr is a terminal 160 columns wide (set in the test itself: pytest puts its own
    capture back on sys.stderr after fixtures run)."""
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setenv("COLUMNS", "160")
    return screen


def drawn(screen: Terminal) -> str:
    return ANSI.sub("", screen.getvalue())


def bar_pattern(description: str, unit: str) -> str:
    return rf"{re.escape(description)} \S* [\d,]+/[\d,]+ {unit}  [\d.,]+ {unit}/s  \d+:\d\d:\d\d left"


@pytest.fixture
def config(tmp_path, tiny_config):
    tiny_config["train"]["progress"] = True
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "parts"
    assert main(["simulate", "--rows", "3000", "--part-rows", "1000", *SMALL, "--seed", "2", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    return out


def epoch_line(record: dict) -> str:
    """The per-epoch line, from the record history.jsonl keeps: each task's AUC, else its first metric."""
    shown = {t: m.get("auc", next(iter(m.values()), math.nan)) for t, m in record["valid"].items()}
    return "  ".join(f"{t} {v:.4f}" for t, v in shown.items())


def test_not_a_terminal_one_line_per_epoch_and_nothing_else(capsys, config, tmp_path):
    code, out, err = cli(capsys, "train", config, "--out", tmp_path / "run")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    lines = err.splitlines()
    assert len(lines) == len(records) == 2, err
    for line, record in zip(lines, records):
        assert re.fullmatch(rf"epoch {record['epoch']}: \d+\.\ds  valid {re.escape(epoch_line(record))}", line), line
    assert "\r" not in err and "\x1b" not in err and "steps/s" not in err
    assert "run directory:" in out


def test_quiet_prints_nothing_but_the_result_and_errors(capsys, config, tmp_path, parts, trained_run):
    code, out, err = cli(capsys, "train", config, "--out", tmp_path / "run", "--quiet")
    assert (code, err) == (0, "")
    assert "| click" in out and "run directory:" in out
    code, out, err = cli(capsys, "simulate", "--rows", "1500", "--part-rows", "1000", *SMALL, "--out",
                         tmp_path / "sim", "--quiet")  # fmt: skip
    assert (code, err, out) == (0, "", f"wrote 1,500 impressions to {tmp_path / 'sim'} (2 Parquet files)\n")
    code, out, err = cli(capsys, "evaluate", trained_run, parts, "--quiet")
    assert (code, err) == (0, "") and "| click" in out
    code, out, err = cli(capsys, "train", tmp_path / "missing.yaml", "--quiet")
    assert code == 2 and err.startswith("error: ") and "missing.yaml" in err


def test_a_terminal_shows_each_epoch_as_a_bar_with_rate_and_time_left(monkeypatch, config, tmp_path):
    terminal = on_terminal(monkeypatch)
    assert main([str(a) for a in ("train", config, "--out", tmp_path / "run")]) == 0
    text = drawn(terminal)
    assert re.search(bar_pattern("epoch 1/2", "steps"), text), text
    assert re.search(bar_pattern("epoch 2/2", "steps"), text), text
    assert re.search(r"(?m)^\r?epoch 1: \d+\.\ds  valid click 0\.\d{4}  ", text), text  # the lines stay
    assert "evaluating on test" in text and "600/600 rows" in text  # one batch: no rate to show
    raw = terminal.getvalue()
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")  # the cursor is shown again at the end


def test_a_terminal_shows_bars_for_simulate_evaluate_predict_and_frontier(monkeypatch, tmp_path, parts, trained_run):
    terminal = on_terminal(monkeypatch)
    assert main(["simulate", "--rows", "2500", "--part-rows", "1000", *SMALL, "--out", str(tmp_path / "sim")]) == 0
    assert main(["simulate", "--days", "2", "--rows", "500", *SMALL, "--out", str(tmp_path / "days")]) == 0
    assert main(["evaluate", str(trained_run), str(parts)]) == 0
    assert main(["predict", str(trained_run), str(parts), "--out", str(tmp_path / "p")]) == 0
    assert main(["frontier", str(trained_run), str(parts / "part-00001.parquet"), "--group", "user_id",
                 "--trials", "3", "--no-save", "--out", str(tmp_path / "f")]) == 0  # fmt: skip
    text = drawn(terminal)
    assert re.search(bar_pattern("simulating 3 parts", "rows"), text), text
    assert re.search(bar_pattern("simulating 2 days", "rows"), text), text
    assert re.search(bar_pattern(f"evaluating {parts}", "rows"), text), text
    assert re.search(bar_pattern(f"scoring {parts}", "rows"), text), text
    assert re.search(bar_pattern("searching fusion weights", "trials"), text), text
    assert re.search(r"4/4 trials", text), text  # the baseline and the 3 trials
