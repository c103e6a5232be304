"""What a long command shows while it works, on stderr: the one place that decides how progress
looks and draws it.

Three modes, chosen once per command (``Progress.auto``):

- ``bar`` (stderr is a terminal): the command's lines (one per epoch, per run, ...) with live bars
  below them that show what is done, the rate and the time left; the bars vanish when their loop
  ends, the lines stay.
- ``lines`` (a log file, CI, a pipe): the same lines and nothing else, so logs read as they always
  have.
- ``quiet`` (``--quiet``): nothing; errors and warnings still print, and the command's result (a
  table, "wrote ...") still goes to stdout.

A command makes one ``Progress`` and passes it down; the loops report to it rather than print:
the trainer through its ``EpochProgress`` callback, the others through a bar's ``advance``. Library
functions that loop take ``advance: Callable[[int], None] | None`` (called with the units done since
the last call), so they need not know about bars at all."""

from __future__ import annotations

import math
import sys
from datetime import timedelta
from typing import Any, Callable, Literal, TextIO

Mode = Literal["bar", "lines", "quiet"]
QUIET_HELP = "Print no progress (no bars, no progress lines): only the result, warnings and errors."
REFRESH_PER_SECOND = 4


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes and closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Bar:
    """One loop's bar. This base class draws nothing (the ``lines`` and ``quiet`` modes); ``active``
    says whether anything is drawn, so that a caller can skip work done only for the bar."""

    active = False

    def advance(self, n: int = 1) -> None:
        """``n`` more units done."""

    def note(self, text: str) -> None:
        """Show ``text`` after the numbers (e.g. each task's running loss)."""

    def close(self) -> None:
        """The loop is over: the bar goes."""

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


NO_BAR = Bar()


class Progress:
    """A command's progress output (see the module docstring). ``stream``: where bars and lines go
    (default: sys.stderr at the time of writing). ``clock``: seconds, for the rate and the time left
    (default: time.monotonic; tests pass their own).

    Use it in a ``with`` block: leaving the block because of an error (or the outermost block in any
    case) removes every bar, so that a failed command leaves the terminal as it found it."""

    def __init__(self, mode: Mode = "lines", stream: TextIO | None = None, clock: Callable[[], float] | None = None):
        if mode not in ("bar", "lines", "quiet"):
            raise ValueError(f"Progress: mode must be 'bar', 'lines' or 'quiet', got {mode!r}")
        self.mode, self.stream, self.clock = mode, stream, clock
        self._bars: Any = None  # rich.progress.Progress while a bar is shown
        self._depth = 0

    @classmethod
    def auto(cls, quiet: bool = False, stream: TextIO | None = None) -> "Progress":
        """``quiet`` if asked; else bars when ``stream`` (default stderr) is a terminal, lines when not."""
        if quiet:
            return cls("quiet", stream)
        return cls("bar" if is_terminal(stream or sys.stderr) else "lines", stream)

    def line(self, text: str) -> None:
        """A line for the log (an epoch's metrics, a run begun): above the bars, or alone; not when quiet."""
        if self.mode == "quiet":
            return
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            print(text, file=self.stream or sys.stderr, flush=True)

    def bar(self, description: str, total: int | None = None, *, unit: str | None = "rows", done: int = 0) -> Bar:
        """A bar for a loop of ``total`` units (None: unknown, a pulsing bar), ``done`` of them
        already; ``unit`` None: work that cannot count its steps (one call), shown with the time
        spent only. A no-op ``Bar`` unless the mode is ``bar``. Close it (or use it in a ``with``
        block) when the loop ends."""
        if self.mode != "bar":
            return NO_BAR
        bars = self._start()
        task = bars.add_task(description, total=total, completed=done, unit=unit, note="")
        bars.advance(task, 0)  # the start, so that the first unit done already gives a rate
        return _LiveBar(self, bars, task)

    def _start(self) -> Any:
        if self._bars is None:
            from rich.console import Console
            from rich.progress import Progress as Bars

            console = Console(file=self.stream or sys.stderr, force_terminal=True, highlight=False, emoji=False)
            self._bars = Bars(
                *_columns(), console=console, transient=True, refresh_per_second=REFRESH_PER_SECOND,
                speed_estimate_period=math.inf,  # the rate over rich's last 1,000 updates, however slow they come
                redirect_stdout=is_terminal(sys.stdout),  # stdout to a file stays there, untouched
                **({"get_time": self.clock} if self.clock is not None else {}),
            )  # fmt: skip
            self._bars.start()
        return self._bars

    def _close(self, bars: Any, task: Any) -> None:
        if bars is not self._bars:  # its display is gone already (an error ended it)
            return
        if len(bars.task_ids) == 1:  # the last bar: draw it once more as it ends, then clear the display
            self._stop()
        else:
            bars.remove_task(task)

    def _stop(self) -> None:
        if self._bars is not None:
            bars, self._bars = self._bars, None
            bars.stop()

    def __enter__(self) -> "Progress":
        self._depth += 1
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._depth -= 1
        if kind is not None or self._depth == 0:
            self._stop()


class _LiveBar(Bar):
    """A task of the display ``bars``; once that display is gone, what it is told is ignored."""

    active = True

    def __init__(self, progress: Progress, bars: Any, task: Any) -> None:
        self.progress, self.bars, self.task = progress, bars, task

    def advance(self, n: int = 1) -> None:
        if self.bars is self.progress._bars:
            self.bars.advance(self.task, n)

    def note(self, text: str) -> None:
        if self.bars is self.progress._bars:
            self.bars.update(self.task, note=text)

    def close(self) -> None:
        self.progress._close(self.bars, self.task)


def _clock_text(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


def _rate_text(per_second: float, unit: str) -> str:
    """'45.2 steps/s', '12,345 rows/s'; below one a second, the time per unit: '38.5 s/run'."""
    if per_second < 1:
        return f"{1 / per_second:,.1f} s/{unit.removesuffix('s')}"
    return f"{per_second:,.0f} {unit}/s" if per_second >= 100 else f"{per_second:.1f} {unit}/s"


def numbers(completed: float, total: float | None, unit: str | None, speed: float | None,
            elapsed: float | None, left: float | None) -> str:  # fmt: skip
    """A bar's text: '120/391 steps  45.2 steps/s  0:00:06 left' ('-' while the rate is not
    known yet; for slow units the time per unit, '38.5 s/run'); without a total: '120 rows  45.2
    rows/s  0:00:02 elapsed'; without a unit: '0:00:02 elapsed'."""
    if unit is None:
        return f"{_clock_text(elapsed or 0)} elapsed"
    done = f"{completed:,.0f}" + (f"/{total:,.0f}" if total is not None else "")
    rate = _rate_text(speed, unit) if speed else f"- {unit}/s"
    if total is None:
        return f"{done} {unit}  {rate}  {_clock_text(elapsed or 0)} elapsed"
    return f"{done} {unit}  {rate}  {_clock_text(left) if left is not None else '-:--:--'} left"


def _columns() -> list[Any]:
    """The bar's columns: description, bar, then ``numbers`` and the note on one line (cut short,
    never wrapped, on a narrow terminal). rich is imported here, when a bar is first drawn."""
    from rich.progress import BarColumn, ProgressColumn, TextColumn
    from rich.text import Text

    class Numbers(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            left = 0.0 if task.finished else task.time_remaining
            text = numbers(task.completed, task.total, task.fields["unit"], speed, task.elapsed, left)
            note = task.fields["note"]
            return Text(f"{text}  {note}" if note else text, no_wrap=True, overflow="ellipsis")

    return [TextColumn("{task.description}", markup=False), BarColumn(bar_width=24), Numbers()]
