"""Read CSV and Parquet files into Arrow tables, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mtlrec.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
# CSV cells read as missing, in every column: an empty cell and the usual spellings of "no value".
# Anything else (e.g. 'N/A' in a numeric column) stays text, so the encoder names its row and column.
CSV_NULLS = ["", "NA", "NaN", "nan", "null", "NULL"]


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
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(null_values=CSV_NULLS, strings_can_be_null=True),
            )
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


def write_table(table: pa.Table, path: str | Path, row_group_size: int | None = None) -> None:
    """Write CSV or Parquet by suffix, atomically (a temporary file, then a rename). In CSV, list
    columns become '|'-joined text. ``row_group_size``: Parquet's rows per row group (the pieces a
    stream reads and shuffles)."""
    from mtlrec.artifacts import atomic_path

    path = Path(path)
    name = path.name.lower()
    if not name.endswith(PARQUET_SUFFIXES + (".csv",)):
        raise DataError(f"{path}: expected a .csv or .parquet output file")
    if not name.endswith(PARQUET_SUFFIXES):  # CSV has no lists: '|'-joined text, as the encoder reads it
        for i, field in enumerate(table.schema):
            if isinstance(field.type, (pa.ListType, pa.LargeListType, pa.FixedSizeListType)):
                text = pc.binary_join(pc.cast(table[field.name], pa.list_(pa.string())), "|")
                table = table.set_column(i, field.name, text)
    with atomic_path(path) as tmp:
        if name.endswith(PARQUET_SUFFIXES):
            pq.write_table(table, tmp, row_group_size=row_group_size)
        else:
            pacsv.write_csv(table, tmp)


def write_parts(out: str | Path, tables: Iterable[pa.Table], row_group_size: int | None = None) -> int:
    """Write ``tables`` as out/part-00001.parquet, ... into a new directory that replaces ``out``
    only once every part is written (a failure leaves ``out`` as it was). Returns the rows written."""
    import shutil
    import uuid

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: a file; for a directory or glob of input, --out is a directory of parts")
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir(parents=True)
    rows = 0
    try:
        for i, table in enumerate(tables, start=1):
            pq.write_table(table, tmp / f"part-{i:05d}.parquet", row_group_size=row_group_size)
            rows += table.num_rows
        old = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows
