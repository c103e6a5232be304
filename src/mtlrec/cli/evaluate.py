from __future__ import annotations

from pathlib import Path

import typer

from mtlrec.progress import QUIET_HELP, Progress

NAME = "evaluate"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    data: Path = typer.Argument(None, metavar="[DATA]", help="CSV or Parquet with feature and label columns (a directory or glob: read piece by piece)."),
    split: str = typer.Option("test", "--split", help="Without DATA: which split of the run's own data (train, valid, test)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the metrics as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
    device: str = typer.Option("auto", "--device", help="Where the model runs: auto (a GPU if torch sees one, else the CPU), cpu, cuda or cuda:N."),
) -> None:
    """Compute every task's metrics of a trained run on a data file, or on a split of the run's own data."""
    from mtlrec.artifacts import write_json
    from mtlrec.cli.report import metrics_table
    from mtlrec.data.readers import read_table
    from mtlrec.data.split import SPLITS
    from mtlrec.errors import ConfigError
    from mtlrec.experiment import load_data
    from mtlrec.data.stream import FileRows, is_stream
    from mtlrec.evaluation import evaluate_files
    from mtlrec.device import resolve_device
    from mtlrec.serve.predictor import Predictor

    predictor = Predictor.load(run_dir, resolve_device(device, key="--device"))
    progress = Progress.auto(quiet)
    if data is not None and is_stream(data):  # a directory or glob: piece by piece, exact metrics
        batch_size = predictor.config.train.eval_batch_size
        total = FileRows(str(data), predictor.encoder, []).rows  # from the Parquet metadata (None: CSV)
        with progress.bar(f"evaluating {data}", total) as bar:
            result = evaluate_files(predictor.model, predictor.encoder, str(data), batch_size,
                                    predictor.config.train.exact_metric_rows, advance=bar.advance,
                                    read=predictor.read())  # fmt: skip
    else:
        with progress.bar(f"reading {data or f'the {split} split'}", unit=None):
            if data is not None:
                table, where = read_table(data), data.name
            else:
                if split not in SPLITS:
                    raise ConfigError(f"--split: expected one of {', '.join(SPLITS)}, got '{split}'")
                _, tables, origins = load_data(predictor.config, predictor.joiner)
                table, where = tables[split], origins[split]
        with progress.bar(f"evaluating {data or f'the {split} split'}", table.num_rows) as bar:
            result = predictor.evaluate(table, where=where, advance=bar.advance)
    print(metrics_table(result["data"], result.get("oracle")))
    if json_out:
        write_json(json_out, result)
