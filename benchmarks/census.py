"""Census-Income (KDD) benchmark: every registered model x {static, one adaptive weighting}, several
seeds, test AUC per task as mean ± std, next to the peers measured on this machine (../shared/BENCHMARKS.md).

    python benchmarks/census.py                               # all models, static + uncertainty, 3 seeds
    python benchmarks/census.py --models mmoe,ple --seeds 1 --set train.epochs=2

The split is the papers' (train on census-income.data; census-income.test halved into valid and test
with data.split.seed); seeds vary only the model's initialisation and batch order. Models that need a
conversion funnel (esmm, aitm: a task with ``where:``) do not apply to Census's two independent tasks
and are reported as skipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mtlrec.cli.table import headline, markdown
from mtlrec.compare import BASELINE, run_grid, summarize, table
from mtlrec.config import load_config
from mtlrec.errors import ConfigError
from mtlrec.models import MODELS, build_model
from mtlrec.progress import Progress

# test AUC (income / marital), 3-seed means, measured on this machine with the papers' split
# (../shared/BENCHMARKS.md): the numbers to beat
PEERS = [
    ("torch-rechub 0.9.0", "shared_bottom", 0.9478, 0.9947),
    ("torch-rechub 0.9.0", "mmoe", 0.9458, 0.9947),
    ("torch-rechub 0.9.0", "ple", 0.9487, 0.9948),
    ("torch-rechub 0.9.0", "aitm", 0.9492, 0.9948),
    ("DeepCTR-Torch 0.3.0", "shared_bottom", 0.9423, 0.9944),
    ("DeepCTR-Torch 0.3.0", "mmoe", 0.9469, 0.9946),
    ("DeepCTR-Torch 0.3.0", "ple", 0.9467, 0.9945),
]


def applicable(cfg, data, models: list[str]) -> tuple[list[str], dict[str, str]]:
    """The models that build on this schema, and why the others do not."""
    ok, skipped = [], {}
    for name in models:
        try:
            build_model(cfg.model.model_copy(update={"name": name}), data.encoder.layout(), data.schema.tasks)
            ok.append(name)
        except ConfigError as err:
            skipped[name] = str(err)
    return ok, skipped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/census.yaml")
    parser.add_argument("--models", default=",".join(MODELS.names()))
    parser.add_argument("--weightings", default="static,uncertainty")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    parser.add_argument("--out", default="runs/bench-census")
    args = parser.parse_args(argv)

    from mtlrec.experiment import prepare

    cfg = load_config(args.config, [*args.overrides, "train.progress=false"])
    start = time.perf_counter()
    data = prepare(cfg)
    models, skipped = applicable(cfg, data, [m for m in args.models.split(",") if m])
    runs = [BASELINE] + [(m, w) for m in models if m != BASELINE[0] for w in args.weightings.split(",")]
    tasks, results = run_grid(cfg, runs, args.seeds, Path(args.out), progress=Progress.auto(), data=data)
    header, rows = table(summarize(tasks, results, headline))
    minutes = (time.perf_counter() - start) / 60

    print(f"Census-Income, {args.config} {' '.join(args.overrides)}: test AUC, mean ± std over {args.seeds} "
          f"seed(s) ({minutes:.0f} min); (lift over single_task)\n")  # fmt: skip
    print(markdown(header, rows))
    for name, why in skipped.items():
        print(f"\nskipped {name}: {why}")
    print("\nPeers on the same split, measured on this machine (../shared/BENCHMARKS.md), 3-seed means:\n")
    print(markdown(["library", "model", "income auc", "marital auc"], [list(p) for p in PEERS]))


if __name__ == "__main__":
    main()
