from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

NAME = "inspect"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    epoch: int = typer.Option(0, "--epoch", help="Which epoch's expert utilisation to show (default: the best)."),
) -> None:
    """Summarise a run: model and hyperparameters, per-epoch validation, test metrics against the
    oracle, and for gated models (omoe, mmoe, ple) which experts each task's gate uses."""
    from mtlrec.artifacts import placement_text, read_history, read_json
    from mtlrec.cli.table import headline, markdown
    from mtlrec.errors import RunError
    from mtlrec.hyper import keyword_parameters
    from mtlrec.models import COMMON
    from mtlrec.serve.predictor import Predictor

    predictor = Predictor.load(run_dir)
    model, cfg = predictor.model, predictor.config.model
    history = read_history(run_dir)
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    shared = sum(p.numel() for p in model.shared_parameters())
    total = sum(p.numel() for p in model.parameters())
    print(f"run {run_dir}: model {model.registered_name} ({model.description})")
    defaults = {name: p.default for name, p in keyword_parameters(type(model)).items()}
    params = {**defaults, **{k: getattr(cfg, k) for k in COMMON}, **cfg.section(cfg.name)}
    print("hyperparameters: " + ", ".join(f"{k}={_show(v)}" for k, v in params.items()))
    print(f"parameters: {total:,} ({shared:,} shared by two or more tasks)")
    placed = predictor.run_info.get("trained_on")  # (older runs did not record it)
    if placed:
        print(f"trained on: {placement_text(placed)}")
    if hasattr(model, "task_paths"):
        own = {n: sum(p.numel() for p in net.parameters()) for n, net in model.task_paths.nets.items()}
        print("task paths (own embeddings + MLP " + _show(cfg.task_path_dims) + "): "
              + ", ".join(f"{n} ({k:,} parameters)" for n, k in own.items()))  # fmt: skip
    if model.derived:
        print("derived outputs: " + ", ".join(f"{d.spec.name} = P({' and '.join(d.of)})" for d in model.derived))

    outputs = model.output_tasks
    shown = {t.name: headline(t) for t in outputs}
    if history:
        best = metrics.get("best_epoch")
        rows = [[f"{r['epoch']}{' *' if r['epoch'] == best else ''}", r.get("seconds"),
                 *(r["valid"].get(t, {}).get(m) for t, m in shown.items())] for r in history]  # fmt: skip
        print(f"\nvalidation by epoch (* best, by {metrics.get('monitor', 'the monitor')})")
        print(markdown(["epoch", "seconds", *(f"{t} {m}" for t, m in shown.items())], rows))
    if "test" in metrics:
        oracle = metrics.get("oracle", {}).get("test")
        rows = [[t, m, metrics["test"].get(t, {}).get(m), *([oracle.get(t, {}).get(m)] if oracle else [])]
                for t, m in shown.items()]  # fmt: skip
        print("\ntest")
        print(markdown(["output", "metric", "value", *(["oracle"] if oracle else [])], rows))

    chosen = epoch or metrics.get("best_epoch") or (history[-1]["epoch"] if history else 0)
    record = next((r for r in history if r["epoch"] == chosen), None)
    if epoch and record is None:
        raise RunError(f"{run_dir / 'history.jsonl'}: no epoch {epoch} (epochs 1..{len(history)})")
    if record and record.get("experts"):
        print(f"\nexpert utilisation, epoch {chosen}: each gate's mean weight on each expert over the epoch's training rows")
        for experts, gates in _group(record["experts"]).items():
            rows = [[gate, *(weights.get(e) for e in experts)] for gate, weights in gates.items()]
            print(markdown(["gate", *experts], rows))
            print()


def _group(gates: dict[str, dict[str, float]]) -> dict[tuple[str, ...], dict[str, dict[str, float]]]:
    """Gates with the same experts share one table."""
    out: dict[tuple[str, ...], dict[str, dict[str, float]]] = {}
    for gate, weights in gates.items():
        out.setdefault(tuple(weights), {})[gate] = weights
    return out


def _show(value: Any) -> str:
    return f"[{', '.join(map(str, value))}]" if isinstance(value, (list, tuple)) else str(value)
