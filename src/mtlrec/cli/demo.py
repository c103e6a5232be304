from __future__ import annotations

import time
from pathlib import Path

import typer

NAME = "demo"
MODELS = ("shared_bottom", "mmoe", "ple", "single_task")
PROFILE_TASKS = ("user_segment", "interests")  # their own embeddings + MLP beside each shared model


def run(
    rows: int = typer.Option(200_000, "--rows", help="Simulated impressions."),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the run directories go, one per model (replaced)."),
    epochs: int = typer.Option(5, "--epochs", help="Training epochs per model."),
    seed: int = typer.Option(0, "--seed", help="Simulator and training seed."),
) -> None:
    """Simulate a shop, train shared_bottom, MMoE, PLE and the single_task baseline, print test metrics
    next to the oracle (the best achievable, from the simulator's true probabilities)."""
    from mtlrec.cli.table import headline, markdown
    from mtlrec.config import ExperimentConfig
    from mtlrec.errors import ConfigError
    from mtlrec.experiment import prepare, run_experiment

    for option, value in (("--rows", rows), ("--epochs", epochs)):
        if value < 1:
            raise ConfigError(f"{option}: expected an integer >= 1, got {value}")
    cfg = ExperimentConfig.model_validate({
        "data": {"synthetic": {"rows": rows, "seed": seed}},
        "model": {"task_paths": PROFILE_TASKS},
        "train": {"epochs": epochs, "seed": seed},
    })
    start = time.perf_counter()
    print(f"simulating {rows:,} impressions and encoding them ...")
    data = prepare(cfg)
    results = {}
    for name in MODELS:
        print(f"training {name} ...")
        run_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": name})})
        results[name] = run_experiment(run_cfg, out / name, overwrite=True, data=data)
    oracle = results[MODELS[0]]["oracle"]["test"]
    rows_out = []
    for task in data.schema.tasks:
        metric = headline(task)
        rows_out.append([task.name, metric, *(results[m]["test"][task.name][metric] for m in MODELS),
                         oracle[task.name][metric]])
    print()
    print(markdown(["task", "test metric", *MODELS, "oracle"], rows_out))
    print(f"\n{time.perf_counter() - start:.0f}s in all; run directories in {out}/ "
          f"(all metrics in each run's metrics.json)")
