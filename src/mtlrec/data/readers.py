"""Read CSV and Parquet files into Arrow tables, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mtlrec.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path) -> pa.Table:
    """Read a CSV (header row; .gz ok) or Parquet file. Fails with a DataError naming the file."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        if name.endswith(PARQUET_SUFFIXES):
            table = pq.read_table(path)
        elif name.endswith(CSV_SUFFIXES):
            delimiter = "\t" if ".tsv" in name else ","
            table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter))
        else:
            raise DataError(
                f"{path}: unknown file type; expected one of "
                f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
            )
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path}: cannot read ({str(err).splitlines()[0]})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: the file has a header but no rows")
    return table


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write CSV or Parquet by suffix, atomically (a temporary file, then a rename)."""
    from mtlrec.artifacts import atomic_path

    path = Path(path)
    name = path.name.lower()
    if not name.endswith(PARQUET_SUFFIXES + (".csv",)):
        raise DataError(f"{path}: expected a .csv or .parquet output file")
    with atomic_path(path) as tmp:
        if name.endswith(PARQUET_SUFFIXES):
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)
