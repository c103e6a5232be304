"""mtlrec/progress.py: the mode chosen for a stream, the bar's numbers (rate and time left) against
a known answer, and what each mode writes."""

from __future__ import annotations

import io
import re

import pytest

from mtlrec.progress import NO_BAR, Progress, is_terminal, numbers

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_mode_follows_the_stream_and_quiet():
    assert Progress.auto(stream=Terminal()).mode == "bar"
    assert Progress.auto(stream=io.StringIO()).mode == "lines"
    assert Progress.auto(quiet=True, stream=Terminal()).mode == "quiet"
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(object())
    with pytest.raises(ValueError, match="'bars'"):
        Progress("bars")


def test_numbers_known_answers_and_degenerate_cases():
    assert numbers(120, 391, "steps", 45.24, 2.0, 6.0) == "120/391 steps  45.2 steps/s  0:00:06 left"
    assert numbers(0, 391, "steps", None, 0.0, None) == "0/391 steps  - steps/s  -:--:-- left"
    assert numbers(2_500_000, None, "rows", 123_456.7, 3725.0, None) == "2,500,000 rows  123,457 rows/s  1:02:05 elapsed"
    assert numbers(0, None, None, None, 61.9, None) == "0:01:01 elapsed"
    assert numbers(0, 0, "rows", 0.0, 0.0, 0.0) == "0/0 rows  - rows/s  0:00:00 left"
    assert numbers(1, 4, "runs", 1 / 38.46, 38.46, 115.4) == "1/4 runs  38.5 s/run  0:01:55 left"
    assert numbers(3, 3, "steps", 1.0, 3.0, 0.0) == "3/3 steps  1.0 steps/s  0:00:00 left"


def test_forced_terminal_draws_rate_and_time_left(monkeypatch):
    """10 steps a second, 20 of 100 done: 8 s left, exactly."""
    monkeypatch.setenv("COLUMNS", "120")  # rich's width for a stream that is no real terminal
    stream, clock = Terminal(), Clock()
    with Progress("bar", stream, clock=clock) as progress:
        bar = progress.bar("epoch 1/2", 100, unit="steps")
        assert bar.active
        clock.now = 1.0
        bar.advance(10)
        clock.now = 2.0
        bar.advance(10)
        bar.note("click 0.4123")
        progress.line("a line above the bar")
        bar.close()
        progress.line("after the bar")
    text = ANSI.sub("", stream.getvalue())
    assert "epoch 1/2" in text
    assert "20/100 steps  10.0 steps/s  0:00:08 left  click 0.4123" in text
    assert "a line above the bar\n" in text and text.endswith("after the bar\n")
    assert progress._bars is None  # the display is gone with the last bar
    raw = stream.getvalue()
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l") > -1  # and the cursor is shown again


def test_nested_bars_and_an_error_leave_no_display():
    stream = Terminal()
    progress = Progress("bar", stream)
    with pytest.raises(RuntimeError):
        with progress:
            outer = progress.bar("runs", 3, unit="runs")
            with progress:  # a run inside the grid
                progress.bar("epoch 1/1", 10, unit="steps")
                raise RuntimeError("boom")
    assert progress._bars is None and outer.active
    later = progress.bar("[runs] again", 2, unit="runs")  # a new display: brackets are text, not markup
    outer.advance(1)  # a bar whose display is gone ignores what it is told
    outer.close()
    assert progress._bars is not None  # and leaves the new display alone
    later.close()
    text = ANSI.sub("", stream.getvalue())
    assert progress._bars is None and "[runs] again" in text and "0/2 runs" in text and "1/2 runs" not in text
    raw = stream.getvalue()
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l") > -1  # the cursor is shown again


@pytest.mark.parametrize("mode", ["lines", "quiet"])
def test_no_bar_outside_a_terminal(mode):
    stream = io.StringIO()
    with Progress(mode, stream) as progress:
        bar = progress.bar("epoch 1/2", 100, unit="steps")
        assert bar is NO_BAR and not bar.active
        bar.advance(5)
        bar.note("ignored")
        progress.line("epoch 1: 0.1s  valid click 0.5000")
        bar.close()
    assert stream.getvalue() == ("epoch 1: 0.1s  valid click 0.5000\n" if mode == "lines" else "")


def test_slow_units_keep_a_rate(monkeypatch):
    """Two runs of 100 s each, of 4: 100 s a run and 200 s left (a window of the last seconds only
    would have no rate at all by then)."""
    monkeypatch.setenv("COLUMNS", "120")
    stream, clock = Terminal(), Clock()
    with Progress("bar", stream, clock=clock) as progress:
        with progress.bar("runs", 4, unit="runs") as bar:
            for now in (100.0, 200.0):
                clock.now = now
                bar.advance(1)
    assert "2/4 runs  100.0 s/run  0:03:20 left" in ANSI.sub("", stream.getvalue())
