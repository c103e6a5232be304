"""``mtlrec report``: the HTML report of a run or a compare directory (``cli/report.py`` holds the
terminal's metric tables)."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "report"


def run(
    path: Path = typer.Argument(..., metavar="RUN", help="A run directory, or a directory that `mtlrec compare` wrote."),
    out: Path = typer.Option(None, "--out", help="Where the HTML goes (default RUN/report.html)."),
) -> None:
    """Write one self-contained HTML file (figures embedded, no network) showing what a run recorded
    (training curves, task weights, gradient conflict, expert utilisation, calibration, residuals,
    test metrics against the oracle, the fusion frontier) or a compare directory's table and lifts."""
    from mtlrec.report import write_report

    print(f"wrote {write_report(path, out)}")


def after_command(path: Path, enabled: bool) -> None:
    """The report at the end of ``train`` and ``compare`` (unless ``--no-report``). The run is
    complete by then: a report that fails is a warning naming the command that retries it."""
    import sys

    if not enabled:
        return
    from mtlrec.report import write_report

    try:
        print(f"report: {write_report(path)}")
    except Exception as err:  # noqa: BLE001 - the run is written; the report must not fail the command
        print(f"warning: the report could not be written ({type(err).__name__}: {err}); "
              f"`mtlrec report {path}` tries again", file=sys.stderr)  # fmt: skip
