from __future__ import annotations

import time
from pathlib import Path

import typer

from mtlrec.cli.html_report import after_command
from mtlrec.cli.report import metrics_table
from mtlrec.progress import QUIET_HELP, Progress

NAME = "train"


def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/synthetic.yaml)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set model.name=shared_bottom"),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/<config>-<model>-<time>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty run directory."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue --out's latest checkpoint (start afresh when it has none)."
    ),
    init_from: Path = typer.Option(
        None, "--init-from", metavar="RUN",
        help="Warm start: begin from RUN's weights and optimizer state on CONFIG's data (new ids get new rows).",
    ),  # fmt: skip
    reset_optimizer: bool = typer.Option(False, "--reset-optimizer", help="With --init-from: fresh optimizer state."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write RUN/report.html at the end."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Train a multi-task model from a YAML config and write a run directory."""
    from mtlrec.config import load_config
    from mtlrec.distributed import env_rank
    from mtlrec.errors import ConfigError
    from mtlrec.experiment import run_experiment

    cfg = load_config(config, set_)
    if resume and out is None:
        raise ConfigError("--resume: give the run directory to continue with --out")
    out = out or Path("runs") / f"{config.stem}-{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if reset_optimizer and init_from is None:
        raise ConfigError("--reset-optimizer: only with --init-from RUN")
    metrics = run_experiment(cfg, out, overwrite=overwrite, resume=resume, init_from=init_from,
                             reset_optimizer=reset_optimizer, progress=Progress.auto(quiet))  # fmt: skip
    if env_rank() != 0:  # under torchrun: rank 0 reports
        return
    print(metrics_table(metrics["test"], metrics.get("oracle", {}).get("test")))
    print(f"\nrun directory: {out}  (best epoch {metrics['best_epoch']} by valid {metrics['monitor']})")
    after_command(out, report)
