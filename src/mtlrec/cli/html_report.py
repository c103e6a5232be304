"""``mtlrec report``: the HTML report of a run or a compare directory (``cli/report.py`` holds the
terminal's metric tables)."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "report"


def run(
    path: Path = typer.Argument(..., metavar="RUN", help="A run directory, or a directory that `mtlrec compare` wrote."),
    out: Path = typer.Option(None, "--out", help="Where the HTML goes (default RUN/report.html)."),
    diagnose: bool = typer.Option(
        False, "--diagnose",
        help="A run without diagnostics.json (trained before mtlrec recorded it): score its test split again "
             "(reads the run's data) for the calibration and residual plots.",
    ),  # fmt: skip
) -> None:
    """Write one self-contained HTML file (figures embedded, no network) showing what a run recorded
    (training curves, task weights, gradient conflict, expert utilisation, calibration, residuals,
    test metrics against the oracle, the fusion frontier) or a compare directory's table and lifts."""
    from mtlrec.artifacts import DIAGNOSTICS
    from mtlrec.errors import ConfigError
    from mtlrec.report import is_compare_dir, write_report

    if diagnose and is_compare_dir(path):
        raise ConfigError(f"--diagnose: {path} is a compare directory; give one of its runs")
    if diagnose and not (path / DIAGNOSTICS).is_file():
        from mtlrec.report.diagnose import record_diagnostics

        print(f"wrote {record_diagnostics(path)}")
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
