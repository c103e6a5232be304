"""diagnostics.json for a run trained before mtlrec recorded it: the saved model scores the run's
own test split again (its data read and split as in training: the split is seeded), so that an
older run's report gets its calibration and residual plots too. Costs reading the data and one
prediction pass over the test split."""

from __future__ import annotations

from pathlib import Path

from mtlrec.artifacts import DIAGNOSTICS, read_run, run_lock, write_json
from mtlrec.errors import ConfigError


def record_diagnostics(run_dir: Path) -> Path:
    """Score ``run_dir``'s test split with its model and write ``run_dir/diagnostics.json``."""
    from mtlrec.data.stream import streams
    from mtlrec.evaluation import diagnostics, score_split
    from mtlrec.experiment import load_data
    from mtlrec.serve.predictor import Predictor

    with run_lock(run_dir):  # no training rewrites the directory meanwhile
        predictor = read_run(run_dir, Predictor.load)
        cfg = predictor.config
        if streams(cfg.data):
            raise ConfigError(f"{run_dir}: its data ({cfg.data.path}) is read piece by piece; --diagnose reads a "
                              "data set in memory only (train the run again to record its diagnostics)")  # fmt: skip
        _, tables, origins = load_data(cfg)
        test = predictor.encoder.transform(tables["test"], where=origins["test"])
        scored = score_split(predictor.model, test, cfg.train.eval_batch_size, tables["test"])
        path = run_dir / DIAGNOSTICS
        write_json(path, {"test": diagnostics(predictor.model, scored)})
    return path
