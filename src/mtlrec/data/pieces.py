"""The pieces of a stream: the files a path, directory or glob names, cut where they can be read on
their own (a Parquet file's row groups; a CSV file whole, read block by block), and reading one
piece's rows with only the columns needed."""

from __future__ import annotations

import csv
import glob
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mtlrec.data.readers import CSV_NULLS, CSV_SUFFIXES, PARQUET_SUFFIXES
from mtlrec.errors import DataError

CSV_BLOCK = 16 << 20  # bytes of CSV text per record batch


def is_pattern(path: str) -> bool:
    return any(c in path for c in "*?[")


def find_files(path: str) -> list[Path]:
    """The CSV/Parquet files that ``path`` names: a file, a directory (its files, recursively) or a
    glob; sorted by name. None: a DataError naming the path."""
    if is_pattern(path):
        found = [Path(p) for p in glob.glob(path, recursive=True)]
    elif Path(path).is_dir():
        found = list(Path(path).rglob("*"))
    else:
        found = [Path(path)] if Path(path).exists() else []
    files = sorted(p for p in found if p.is_file() and p.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES))
    if not files:
        suffixes = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        raise DataError(f"{path}: no CSV or Parquet files there (expected {suffixes})")
    return files


@dataclass(frozen=True)
class Piece:
    """Rows read together: row group ``group`` of a Parquet file (``rows`` of them, starting at
    row ``first`` of the file), or a whole CSV file (``group`` None; ``rows`` unknown until read)."""

    path: Path
    group: int | None = None
    first: int = 0
    rows: int | None = None

    @property
    def name(self) -> str:
        return self.path.name


def pieces_of(files: Sequence[Path]) -> list[Piece]:
    out = []
    for path in files:
        if not path.name.lower().endswith(PARQUET_SUFFIXES):
            out.append(Piece(path))
            continue
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"{path}: cannot read ({str(err).splitlines()[0]})") from None
        first = 0
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            out.append(Piece(path, g, first, rows))
            first += rows
    return out


def read_piece(piece: Piece, columns: Sequence[str]) -> Iterator[tuple[pa.Table, int]]:
    """The piece's rows, with only ``columns`` (those the file has), as tables, each with the index
    in its file of its first row."""
    try:
        if piece.group is not None:
            f = pq.ParquetFile(piece.path)
            have = set(f.schema_arrow.names)
            yield f.read_row_group(piece.group, columns=[c for c in columns if c in have]), piece.first
            return
        delimiter = "\t" if ".tsv" in piece.name.lower() else ","
        have = set(_csv_header(piece.path, delimiter))
        reader = pacsv.open_csv(
            piece.path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                null_values=CSV_NULLS, strings_can_be_null=True, include_columns=[c for c in columns if c in have]
            ),
        )
        first = 0
        for batch in reader:
            yield pa.Table.from_batches([batch]), first
            first += batch.num_rows
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{piece.path}: cannot read ({str(err).splitlines()[0]})") from None


def _csv_header(path: Path, delimiter: str) -> list[str]:
    """The column names on a CSV file's first line (compressed files too)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        head = stream.read(1 << 16).decode("utf-8", errors="replace")
    return next(csv.reader(io.StringIO(head.split("\n", 1)[0]), delimiter=delimiter), [])
