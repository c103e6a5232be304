"""Reading the public data sets' files as distributed: every cell is read as text first, so a
malformed line is reported with its file and line number; typed columns are checked after."""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mtlrec.config import DataConfig, SplitConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from mtlrec.data.sources import Source
    from mtlrec.spec import Schema

log = logging.getLogger("mtlrec.data")
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INTEGER = r"^[+-]?\d+$"
TEXT_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".data", ".data.gz", ".test", ".test.gz")


def _open_text(path: Path) -> IO[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8", errors="replace")


def first_line(path: Path) -> str:
    with _open_text(path) as f:
        return f.readline().rstrip("\r\n")


@dataclass(frozen=True)
class TextFile:
    """A file read as rows (empty lines skipped); row 0 is on line ``first_line``."""

    path: Path
    first_line: int

    def line(self, row: int) -> int:
        """The line number of ``row``; the file is scanned again (only on the error path)."""
        with _open_text(self.path) as f:
            for number, text in enumerate(f, start=1):
                if number >= self.first_line and text.rstrip("\r\n"):
                    if row == 0:
                        return number
                    row -= 1
        return self.first_line + row

    def error(self, row: int, message: str) -> DataError:
        return DataError(f"{self.path} line {self.line(row)}: {message}")


def read_delimited(
    path: Path, *, names: list[str] | None = None, delimiter: str = ",", nulls: tuple[str, ...] = ("",)
) -> tuple[pa.Table, TextFile]:
    """A delimited text file (.gz ok) as a table of strings. ``names``: the columns of a file without
    a header row; None: the first line is the header. A line with the wrong number of fields is a
    DataError naming the file and the line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    header = names is None
    names = header_names(path, delimiter) if names is None else names
    table = _parse(path, path, names, int(header), delimiter, nulls, lambda number: number)
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows")
    return table, TextFile(path, 2 if header else 1)


def delimited_blocks(
    path: Path, rows: int, *, names: list[str] | None = None, delimiter: str = ",", nulls: tuple[str, ...] = ("",)
) -> Iterator[tuple[pa.Table, TextFile]]:
    """``read_delimited``'s table ``rows`` lines at a time (memory: one block), each with the
    TextFile that names its rows' lines."""
    header = names is None
    names = header_names(path, delimiter) if names is None else names
    for lines, line_no in line_blocks(path, rows):
        if header and line_no[0] == 1:
            lines, line_no = lines[1:], line_no[1:]
            if not len(lines):
                continue
        text = ("\n".join(lines.to_pylist()) + "\n").encode()
        yield _parse(pa.BufferReader(text), path, names, 0, delimiter, nulls, lambda n: int(line_no[n - 1])), \
            TextFile(path, int(line_no[0]))  # fmt: skip


def header_names(path: Path, delimiter: str) -> list[str]:
    """The column names of a file's header row; a name used twice is a DataError."""
    names = [n.strip() for n in first_line(path).split(delimiter)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{path} line 1: column name(s) used twice in the header: {', '.join(dup)}")
    return names


def _parse(
    source: Path | pa.BufferReader, path: Path, names: list[str], skip: int, delimiter: str,
    nulls: tuple[str, ...], file_line: Callable[[int], int],
) -> pa.Table:  # fmt: skip
    """``source``'s rows as strings; a bad line is a DataError naming ``path`` and ``file_line`` of
    the line's number in ``source``."""
    bad: list[pacsv.InvalidRow] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    try:
        return pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, null_values=list(nulls), strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, OSError) as err:
        if bad:
            row = bad[0]
            where = f"line {file_line(row.number)}" if row.number is not None else "a line"
            raise DataError(
                f"{path} {where}: expected {row.expected_columns} fields separated by {delimiter!r}, "
                f"got {row.actual_columns}: {row.text[:80]!r}"
            ) from None
        raise DataError(f"{path}: cannot read ({str(err).splitlines()[0]})") from None


def read_lines(path: Path) -> tuple[pa.Array, np.ndarray]:
    """The non-blank lines of a text file (.gz ok) and their line numbers."""
    blocks = list(line_blocks(path, rows=None))
    if len(blocks) == 1:
        return blocks[0]
    return pa.concat_arrays([b for b, _ in blocks]), np.concatenate([n for _, n in blocks])


def line_blocks(path: Path, rows: int | None) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """The non-blank lines of a text file (.gz ok), ``rows`` at a time (None: all at once), each
    block with its lines' numbers; a file without one is a DataError."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    lines: list[str] = []
    numbers: list[int] = []
    found = False
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                lines.append(line.rstrip("\r\n"))
                numbers.append(number)
                found = True
                if rows is not None and len(lines) == rows:
                    yield pa.array(lines, pa.string()), np.array(numbers)
                    lines, numbers = [], []
    if not found:
        raise DataError(f"{path}: the file is empty")
    if lines:
        yield pa.array(lines, pa.string()), np.array(numbers)


def _checked(
    table: pa.Table, name: str, file: TextFile, pattern: str, expected: str, *, missing: bool = False
) -> pa.ChunkedArray:
    """The column trimmed, every cell matching ``pattern`` (with ``missing``, empty cells -> null)."""
    col = pc.utf8_trim_whitespace(table[name])
    if missing:
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
    ok = np.asarray(pc.match_substring_regex(col, pattern).fill_null(missing))
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        got = col[row].as_py()
        got = "an empty cell" if got is None else repr(got)
        raise file.error(row, f"column '{name}': expected {expected}, got {got}")
    return col


def numbers(table: pa.Table, name: str, file: TextFile, *, missing: bool = False) -> np.ndarray:
    """A column of numbers as float64; with ``missing``, empty (or null) cells become NaN."""
    text = _checked(table, name, file, _NUMBER, "a number", missing=missing)
    return np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def integers(table: pa.Table, name: str, file: TextFile) -> np.ndarray:
    """A column of integers as int64."""
    text = _checked(table, name, file, _INTEGER, "an integer")
    return np.asarray(pc.cast(text, pa.int64()), dtype=np.int64)


def binary(table: pa.Table, name: str, file: TextFile) -> np.ndarray:
    """A 0/1 label column as int8."""
    text = _checked(table, name, file, _NUMBER, "a 0/1 label")
    values = np.asarray(pc.cast(text, pa.float64()))
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        raise file.error(int(bad[0]), f"column '{name}': expected a 0/1 label, got {text[int(bad[0])].as_py()!r}")
    return values.astype(np.int8)


def find_split_files(folder: Path, source: str) -> dict[str, Path]:
    """The train, test and (optional) validation files of a data set folder, by name: a file whose
    name holds 'train', 'val' or 'test' and ends in a text suffix."""
    found: dict[str, list[Path]] = {"train": [], "valid": [], "test": []}
    for p in sorted(folder.iterdir()):
        name = p.name.lower()
        if not p.is_file() or not name.endswith(TEXT_SUFFIXES):
            continue
        for role, key in (("train", "train"), ("valid", "val"), ("test", "test")):
            if key in name:
                found[role].append(p)
    for role, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"{folder}: more than one {role} file ({', '.join(p.name for p in paths)})")
    for role in ("train", "test"):
        if not found[role]:
            raise DataError(
                f"{folder}: no {role} file for data source '{source}' "
                f"(expected a file whose name contains '{role}', ending in .csv, .txt or .gz)"
            )
    return {role: paths[0] for role, paths in found.items() if paths}


def predefined_splits(
    tables: dict[str, pa.Table],
    origins: dict[str, RowOrigin],
    split: SplitConfig,
    source: str,
    files: dict[str, Path],
) -> tuple[dict[str, pa.Table], dict[str, RowOrigin]]:
    """train/valid/test from a data set's own files (``origins``: where each table's rows are in
    its file), and where their rows come from; without a validation file the test file is split 1:1
    (at random, seeded by data.split.seed) into valid and test, as in the MMoE paper."""
    if split.method != "random":
        raise ConfigError(
            f"data.split.method: '{source}' uses the data set's own train/test files; "
            f"only data.split.seed (which halves the test file into valid and test) applies"
        )
    names = tables["train"].column_names
    for role, t in tables.items():
        if t.column_names != names:
            raise DataError(
                f"{files[role]}: columns {', '.join(t.column_names[:6])}... differ from those of the train file "
                f"{files['train'].name} ({', '.join(names[:6])}...)"
            )
    if "valid" not in tables:
        test = tables["test"]
        if test.num_rows < 2:
            raise DataError(
                f"{files['test']} has too few rows ({test.num_rows}) to halve into a valid and a test split; add rows"
            )
        order = np.random.default_rng(split.seed).permutation(test.num_rows)
        half = (test.num_rows + 1) // 2
        parts = {"valid": np.sort(order[:half]), "test": np.sort(order[half:])}
        tables = {"train": tables["train"], **{name: test.take(pa.array(idx)) for name, idx in parts.items()}}
        origins = {"train": origins["train"], **{name: origins["test"].take(idx) for name, idx in parts.items()}}
    names = ("train", "valid", "test")
    for name in names:
        if not tables[name].num_rows:  # every row dropped (drop_unclicked)
            raise DataError(f"{origins[name]}: no rows left for the {name} split")
    return {name: tables[name] for name in names}, {name: origins[name] for name in names}


def drop_unclicked(
    table: pa.Table, click: str, conversion: str, path: Path, option: str, keep: bool
) -> tuple[pa.Table, RowOrigin]:
    """Rows with a conversion but no click (raw Ali-CCP has some): log a warning with their count,
    then drop them, or keep them (outside the conversion task's sample space: the clicked rows).
    Returns the table and where its rows are in the file ``path``."""
    origin = RowOrigin(path.name)
    odd = unclicked(table, click, conversion)
    n = int(odd.sum())
    if n:
        log.warning(unclicked_warning(path, n, click, conversion, option, keep))
        if not keep:
            table, origin = table.filter(pa.array(~odd)), origin.take(~odd)
    return table, origin


def unclicked(table: pa.Table, click: str, conversion: str) -> np.ndarray:
    """[N] bool: the rows with a conversion but no click."""
    return (np.asarray(table[conversion]) == 1) & (np.asarray(table[click]) == 0)


def unclicked_warning(path: Path, n: int, click: str, conversion: str, option: str, keep: bool) -> str:
    action = "kept (outside the post-click task's sample space)" if keep else f"dropped ({option}: keep keeps them)"
    return f"{path}: {n} row(s) with {conversion}=1 but {click}=0; {action}"


def file_or_split_files(
    cfg: DataConfig,
    source: str,
    read: Callable[[Path], tuple[pa.Table, RowOrigin]],
    schema_of: Callable[[pa.Table], "Schema"],
) -> "Source":
    """``data.path`` is one file (split later by ``data.split``) or a folder of train/test (and
    optional val) files, the data set's own splits; ``read`` gives a file's table and where its rows
    are in the file; ``schema_of`` reads the default schema off the (train) table."""
    from mtlrec.data.sources import Source, require_path

    path = require_path(cfg)
    if path.is_file():
        table, origin = read(path)
        return Source(table, schema_of(table), origin)
    files = find_split_files(path, source)
    read_files = {role: read(p) for role, p in files.items()}
    tables = {role: table for role, (table, _) in read_files.items()}
    origins = {role: origin for role, (_, origin) in read_files.items()}
    splits, split_origins = predefined_splits(tables, origins, cfg.split, source, files)
    table = pa.concat_tables(splits.values())
    return Source(table, schema_of(splits["train"]), RowOrigin(path.name), splits, split_origins)
