from __future__ import annotations

from pathlib import Path

import typer

NAME = "predict"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    data: Path = typer.Argument(..., metavar="DATA", help="CSV or Parquet with the feature columns."),
    out: Path = typer.Option(..., "--out", help="Output .csv or .parquet: one column per task (or per class)."),
    keep: str = typer.Option("", "--keep", help="Input columns to copy to the output, e.g. request_id,item_id."),
) -> None:
    """Score rows with a trained run: probabilities for binary, multiclass and multilabel tasks, values for regression."""
    import pyarrow as pa

    from mtlrec.data.columns import require_columns
    from mtlrec.data.readers import read_table, write_table
    from mtlrec.serve.predictor import Predictor, prediction_columns

    predictor = Predictor.load(run_dir)
    table = read_table(data)
    kept = [c for c in keep.split(",") if c]
    require_columns(table, kept, f"{data.name} (--keep)")
    preds = prediction_columns(predictor.tasks, predictor.predict(table, where=data.name))
    columns = {c: table[c] for c in kept} | {name: pa.array(v) for name, v in preds.items()}
    write_table(pa.table(columns), out)
    print(f"wrote {table.num_rows:,} rows x {len(preds)} prediction columns to {out}")
