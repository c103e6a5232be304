from __future__ import annotations

import time
from pathlib import Path

import typer

from mtlrec.progress import QUIET_HELP, Progress

NAME = "compare"


def _names(text: str, option: str) -> list[str]:
    from mtlrec.errors import ConfigError

    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"{option}: expected a comma-separated list of names, got {text!r}")
    return names


def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/conflict.yaml)."),
    models: str = typer.Option("shared_bottom", "--models", help="Comma-separated models: shared_bottom,mmoe"),
    weightings: str = typer.Option("static", "--weightings", help="Comma-separated methods: static,pcgrad,nash_mtl"),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per cell: train.seed, train.seed + 1, ..."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set train.epochs=2"),
    out: Path = typer.Option(None, "--out", help="Where runs and tables go (default runs/compare-<config>-<time>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out directory."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write OUT/report.html at the end."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Train every model x weighting (and the single_task baseline) over several seeds; print and
    write (compare.md, compare.csv) each task's test metric, mean ± std over the seeds, with the
    lift over single-task; NT marks negative transfer (worse than single-task by more than the two
    standard deviations added)."""
    from mtlrec.artifacts import write_text
    from mtlrec.cli.html_report import after_command
    from mtlrec.cli.table import headline, markdown
    from mtlrec.compare import check_names, grid, oracle_row, run_grid, summarize, table, write_csv
    from mtlrec.config import load_config
    from mtlrec.errors import ConfigError, RunError

    if seeds < 1:
        raise ConfigError(f"--seeds: expected an integer >= 1, got {seeds}")
    cfg = load_config(config, set_)
    model_names, weighting_names = _names(models, "--models"), _names(weightings, "--weightings")
    check_names(model_names, weighting_names)
    out = out or Path("runs") / f"compare-{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RunError(f"{out}: already exists and is not empty; choose another --out or pass --overwrite")
    runs = grid(model_names, weighting_names)
    progress = Progress.auto(quiet)
    progress.line(f"{len(runs)} configurations x {seeds} seeds = {len(runs) * seeds} runs into {out}/")
    tasks, results = run_grid(cfg, runs, seeds, out, progress=progress)
    cells = summarize(tasks, results, headline)
    header, rows = table(cells)
    oracle = oracle_row(tasks, results, headline)
    text = markdown(header, rows + ([oracle] if oracle else []))
    legend = (f"Test metric, mean ± std over {seeds} seed(s); (lift over single_task); NT: negative transfer "
              "(worse than single_task by more than the two standard deviations added)"
              + ("; oracle: the simulator's ground truth scored the same way, the best achievable." if oracle else "."))  # fmt: skip
    write_text(out / "compare.md", f"{text}\n\n{legend}\n")
    write_csv(out / "compare.csv", cells)
    print(f"\n{text}\n\n{legend}\ntables: {out / 'compare.md'}, {out / 'compare.csv'}")
    after_command(out, report)
