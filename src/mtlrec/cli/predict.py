from __future__ import annotations

from pathlib import Path

import typer

from mtlrec.progress import QUIET_HELP, Progress

NAME = "predict"


def run(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    data: Path = typer.Argument(..., metavar="DATA", help="CSV or Parquet with the feature columns (a directory or glob: read piece by piece)."),
    out: Path = typer.Option(..., "--out", help="Output .csv or .parquet: one column per task (or per class); for a directory or glob of input, a directory of Parquet parts."),
    keep: str = typer.Option("", "--keep", help="Input columns to copy to the output, e.g. request_id,item_id."),
    lists: bool = typer.Option(False, "--lists", help="Write ranked lists instead: per --group, one list per task plus the fused one (RUN's fusion)."),
    group: str = typer.Option("request_id", "--group", help="With --lists: the column whose rows are one request's candidates."),
    item_id: str = typer.Option("item_id", "--id", help="With --lists: the column that names a candidate."),
    top: int = typer.Option(None, "--top", help="With --lists: keep the first N of each list (default: all)."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
    device: str = typer.Option("auto", "--device", help="Where the model runs: auto (a GPU if torch sees one, else the CPU), cpu, cuda or cuda:N."),
) -> None:
    """Score rows with a trained run: probabilities for binary, multiclass and multilabel tasks, values for regression. With --lists: one row per (request, list, rank)."""
    import pyarrow as pa

    from mtlrec.data.columns import require_columns
    from mtlrec.data.readers import read_table, write_table
    from mtlrec.data.stream import is_stream
    from mtlrec.device import resolve_device
    from mtlrec.serve.predictor import Predictor, prediction_columns

    predictor = Predictor.load(run_dir, resolve_device(device, key="--device"))
    progress = Progress.auto(quiet)
    kept = [c for c in keep.split(",") if c]
    if is_stream(data):  # a directory or glob: piece by piece, into a directory of parts
        _predict_files(predictor, data, out, kept, lists, progress)
        return
    with progress.bar(f"reading {data}", unit=None):
        table = predictor.joined(read_table(data), data.name)  # the run's side tables fill in what rows lack
    require_columns(table, kept, f"{data.name} (--keep)")
    with progress.bar(f"scoring {data}", table.num_rows) as bar:
        preds = predictor.predict(table, where=data.name, advance=bar.advance)
    if lists:
        from mtlrec.errors import ConfigError
        from mtlrec.rank.fusion import load_fusion
        from mtlrec.rank.lists import grouped_lists, lists_table
        from mtlrec.rank.study import group_column

        if top is not None and top < 1:
            raise ConfigError(f"--top: expected an integer >= 1, got {top}")
        require_columns(table, [item_id], f"{data.name} (--id)")
        fuser = load_fusion(run_dir)
        ranked = grouped_lists(group_column(table, group, data.name), preds, fuser, table=table, k=top, where=data.name)
        result = lists_table(ranked, table, group=group, item_id=item_id, keep=kept)
        write_table(result, out)
        print(f"wrote {result.num_rows:,} rows: {len(ranked)} lists ({', '.join(ranked)}) for "
              f"{len(set(ranked['fused'].group.tolist())):,} '{group}' groups to {out}; fused: {fuser.describe()}")  # fmt: skip
        return
    cols = prediction_columns(predictor.tasks, preds, predictor.encoder.classes_)
    columns = {c: table[c] for c in kept} | {name: pa.array(v) for name, v in cols.items()}
    write_table(pa.table(columns), out)
    print(f"wrote {table.num_rows:,} rows x {len(cols)} prediction columns to {out}")


def _predict_files(predictor, data: Path, out: Path, kept: list[str], lists: bool, progress: Progress) -> None:
    """``predict`` for every row of the files a directory or glob names: one Parquet part per piece
    read, written into ``out`` as a set (data/readers.py write_parts)."""
    import pyarrow as pa

    from mtlrec.data.columns import require_columns
    from mtlrec.data.readers import write_parts
    from mtlrec.data.stream import FileRows
    from mtlrec.errors import ConfigError
    from mtlrec.evaluation import predict
    from mtlrec.serve.predictor import prediction_columns

    if lists:
        raise ConfigError("--lists: needs one file (a request's candidates together); DATA is a directory or glob")
    columns = [*predictor.encoder.schema.columns(labels=False), *kept]
    rows = FileRows(str(data), predictor.encoder, columns, labels=False, read=predictor.read())
    batch_size = predictor.config.train.eval_batch_size

    def parts(advance):
        for chunk, table in rows.chunks():
            require_columns(table, kept, f"{data} (--keep)")
            preds = predict(predictor.model, chunk, batch_size, advance)
            cols = prediction_columns(predictor.tasks, preds, predictor.encoder.classes_)
            yield pa.table({c: table[c] for c in kept} | {name: pa.array(v) for name, v in cols.items()})

    with progress.bar(f"scoring {data}", rows.rows) as bar:
        n = write_parts(out, parts(bar.advance))
    print(f"wrote {n:,} rows of predictions to {out}/ (one Parquet part per piece read)")
