"""The HTML report: one self-contained file (figures embedded as PNG, no network) that shows what a
run recorded, or what a ``mtlrec compare`` directory found. ``write_report(path)`` writes
``path/report.html`` for either."""

from __future__ import annotations

from pathlib import Path

from mtlrec.artifacts import REPORT, RUN_JSON
from mtlrec.errors import RunError


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``path`` (a run directory, or a compare directory: one with
    compare.csv) to ``out`` (default ``path/report.html``), atomically; return where it went."""
    from mtlrec.report.page import write_page

    path = Path(path)
    target = Path(out) if out is not None else path / REPORT
    if is_compare_dir(path):
        from mtlrec.report.compare import compare_page

        return write_page(target, compare_page(path))
    if path.is_dir() and not (path / RUN_JSON).is_file() and not (path / "config.yaml").is_file():
        raise RunError(f"{path}: neither a run directory (run.json) nor a compare directory (compare.csv)")
    from mtlrec.report.run import run_page

    return write_page(target, run_page(path))


def is_compare_dir(path: Path) -> bool:
    """Whether ``path`` is a directory that ``mtlrec compare`` wrote (it has compare.csv)."""
    return (Path(path) / "compare.csv").is_file()
