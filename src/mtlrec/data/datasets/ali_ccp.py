"""Ali-CCP (Alibaba Click and Conversion Prediction; the ESMM paper's data), in the two sample
formats in circulation:

- processed CSV with a header (torch-rechub, PaddleRec AITM): ``click``, ``purchase`` (or
  ``conversion``), one column per field id (label-encoded; a categorical feature each) and ``D*``
  dense columns (numeric). A file without a header must have PaddleRec AITM's 20 columns (below).
- raw lines ``sample_id,click,conversion,field:feasign,...`` (PaddleRec ESMM): single-valued fields
  become categorical columns, multi-valued ones (user behaviour, item intention) list columns, which
  the default schema reads as mean-pooled sequences.

``data.path``: one file (split by ``data.split``) or a folder with a train, a test and optionally a
validation file (names holding 'train', 'test', 'val'); without a validation file the test file is
halved into valid and test with ``data.split.seed``. Tasks: ``click`` and ``purchase`` on clicked rows
(the CVR sample space); a row with a purchase but no click is a quirk of raw Ali-CCP: a warning
with their count, then ``unclicked_purchases`` decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.config import DataConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.datasets._files import (
    TextFile,
    binary,
    delimited_blocks,
    drop_unclicked,
    file_or_split_files,
    first_line,
    line_blocks,
    log,
    numbers,
    read_delimited,
    read_lines,
    unclicked,
    unclicked_warning,
)
from mtlrec.data.sources import SOURCES, DataSource, Source
from mtlrec.errors import DataError
from mtlrec.spec import FeatureSpec, Schema, TaskSpec

# the raw fields: user (101, 121-129, *_14 behaviour), item (205-216), user x item (508-853), 301 position
SINGLE_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "216", "301")
MULTI_FIELDS = ("109_14", "110_14", "127_14", "150_14", "210", "508", "509", "702", "853")
AITM_COLUMNS = ("click", "purchase", "101", "121", "122", "124", "125", "126", "127", "128", "129",
                "205", "206", "207", "216", "508", "509", "702", "853", "301")  # fmt: skip
LABELS = ("click", "purchase")
USER = "101"


def default_schema(table: pa.Table) -> Schema:
    features = []
    for name in table.column_names:
        if name in LABELS or name == "sample_id":
            continue
        kind = table.schema.field(name).type
        if pa.types.is_list(kind):
            features.append(FeatureSpec(name, "sequence"))
        elif pa.types.is_floating(kind):
            features.append(FeatureSpec(name, "numeric"))
        else:
            features.append(FeatureSpec(name, "categorical"))
    tasks = (TaskSpec("click", "binary"), TaskSpec("purchase", "binary", where="click"))
    return Schema(tuple(features), tasks, group=USER if USER in table.column_names else None)


def read_ali_ccp(path: Path) -> pa.Table:
    """One Ali-CCP file in either format (decided by its first line)."""
    fields = first_line(path).split(",")
    if len(fields) > 3 and ":" in fields[3]:
        return read_raw(path)
    return read_processed(path, header=not fields[0].strip().isdigit())  # a header starts with a name


def read_processed(path: Path, header: bool) -> pa.Table:
    return processed_table(*read_delimited(path, names=_processed_names(path, header)), path)


def _processed_names(path: Path, header: bool) -> list[str] | None:
    """None for a file with a header; PaddleRec AITM's columns for one without."""
    if header:
        return None
    width = len(first_line(path).split(","))
    if width != len(AITM_COLUMNS):
        raise DataError(
            f"{path} line 1: no header row and {width} fields; expected a header or the "
            f"{len(AITM_COLUMNS)} columns {','.join(AITM_COLUMNS)}"
        )
    return list(AITM_COLUMNS)


def processed_table(raw: pa.Table, file: TextFile, path: Path) -> pa.Table:
    """Processed rows read as text, typed: labels 0/1, D* numbers, the rest categorical text."""
    if "conversion" in raw.column_names and "purchase" not in raw.column_names:
        raw = raw.rename_columns(["purchase" if c == "conversion" else c for c in raw.column_names])
    missing = [c for c in LABELS if c not in raw.column_names]
    if missing:
        raise DataError(f"{path}: no label column(s) {', '.join(missing)} (has: {', '.join(raw.column_names[:8])} ...)")
    cols: dict[str, object] = {}
    for name in raw.column_names:
        if name in LABELS:
            cols[name] = binary(raw, name, file)
        elif name.startswith("D"):  # dense features, e.g. D109_14
            cols[name] = numbers(raw, name, file, missing=True)
        else:
            cols[name] = pc.utf8_trim_whitespace(raw[name])
    return pa.table(cols)


def read_raw(path: Path) -> pa.Table:
    """``sample_id,click,conversion,field:feasign,...`` lines; vectorised over all tokens."""
    return raw_table(*read_lines(path), path)


def raw_blocks(path: Path, rows: int) -> Iterator[pa.Table]:
    """A raw file's rows ``rows`` at a time (memory: one block), every block with every field's
    column (a field absent from a block: all missing there)."""
    for lines, line_no in line_blocks(path, rows):
        yield raw_table(lines, line_no, path)


def raw_table(lines: pa.Array, line_no: np.ndarray, path: Path) -> pa.Table:
    """Raw lines (``line_no``: their numbers in ``path``, for errors) as a table."""
    n = len(lines)
    parts = pc.split_pattern(lines, ",")
    lengths = np.asarray(pc.list_value_length(parts))
    if (lengths < 3).any():
        row = int(np.flatnonzero(lengths < 3)[0])
        raise DataError(
            f"{path} line {line_no[row]}: expected sample_id,click,conversion,field:feasign,..., "
            f"got {lengths[row]} field(s)"
        )
    flat = parts.flatten()
    starts = np.asarray(parts.offsets)[:-1]
    cols: dict[str, object] = {"sample_id": flat.take(pa.array(starts))}
    for i, name in ((1, "click"), (2, "purchase")):
        text = flat.take(pa.array(starts + i))
        ok = np.asarray(pc.is_in(text, value_set=pa.array(["0", "1"])))
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            label = "conversion" if name == "purchase" else name
            raise DataError(
                f"{path} line {line_no[row]}: field {i + 1} ({label}): expected 0 or 1, got {text[row].as_py()!r}"
            )
        cols[name] = np.asarray(pc.equal(text, "1"), dtype=np.int8)

    row_of = np.repeat(np.arange(n), lengths)
    pos = np.arange(len(flat)) - np.repeat(starts, lengths)
    token_idx = np.flatnonzero(pos >= 3)
    rows = row_of[token_idx]
    tokens = flat.take(pa.array(token_idx))
    parsed = pc.extract_regex(tokens, r"^(?P<field>[^:\s]+):(?P<sign>[^:\s]+)$")
    ok = np.asarray(parsed.is_valid())
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{path} line {line_no[rows[k]]}: field {pos[token_idx[k]] + 1}: expected a field:feasign token, "
            f"got {tokens[k].as_py()!r}"
        )
    field, sign = parsed.field("field"), parsed.field("sign")
    known = SINGLE_FIELDS + MULTI_FIELDS
    code = np.asarray(pc.index_in(field, value_set=pa.array(known)).fill_null(-1))
    if (code < 0).any():
        k = int(np.flatnonzero(code < 0)[0])
        raise DataError(
            f"{path} line {line_no[rows[k]]}: unknown Ali-CCP field {field[k].as_py()!r} "
            f"(expected one of {', '.join(known)})"
        )
    for j, name in enumerate(known):
        sel = np.flatnonzero(code == j)
        values, at = sign.take(pa.array(sel)), rows[sel]
        counts = np.bincount(at, minlength=n)
        if name in MULTI_FIELDS:
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
            cols[name] = pa.ListArray.from_arrays(pa.array(offsets), values)
            continue
        if (counts > 1).any():
            row = int(np.flatnonzero(counts > 1)[0])
            raise DataError(
                f"{path} line {line_no[row]}: field {name} appears {counts[row]} times; expected at most one value"
            )
        index = np.full(n, -1)
        index[at] = np.arange(len(at))
        cols[name] = values.take(pa.array(index, mask=index < 0))
    return pa.table(cols)


@SOURCES.register("ali_ccp")
class AliCCP(DataSource):
    description = "Ali-CCP (ESMM paper): click and post-click purchase; processed CSV or raw field:feasign lines"
    path_help = "one Ali-CCP file, or a folder with train/test (and optional val) files"
    tasks = ("click", "purchase (where click)")

    def __init__(self, *, unclicked_purchases: Literal["drop", "keep"] = "drop") -> None:
        self.unclicked_purchases = unclicked_purchases

    def _read(self, path: Path) -> tuple[pa.Table, RowOrigin]:
        table = read_ali_ccp(path)
        return drop_unclicked(
            table, "click", "purchase", path, "data.ali_ccp.unclicked_purchases", self.unclicked_purchases == "keep"
        )

    def load(self, cfg: DataConfig) -> Source:
        return file_or_split_files(cfg, self.registered_name, self._read, default_schema)

    def blocks(self, path: Path, rows: int) -> Iterator[pa.Table]:
        """A file's rows (either format), ``rows`` at a time; unclicked purchases dropped or kept as
        configured (one warning with their count)."""
        if not path.is_file():
            raise DataError(f"{path}: no such file (convert one Ali-CCP file at a time)")
        fields = first_line(path).split(",")
        if len(fields) > 3 and ":" in fields[3]:
            tables = raw_blocks(path, rows)
        else:
            names = _processed_names(path, header=not fields[0].strip().isdigit())
            tables = (processed_table(raw, file, path) for raw, file in delimited_blocks(path, rows, names=names))
        keep, dropped = self.unclicked_purchases == "keep", 0
        for table in tables:
            odd = unclicked(table, "click", "purchase")
            dropped += int(odd.sum())
            yield table if keep else table.filter(pa.array(~odd))
        if dropped:
            log.warning(unclicked_warning(path, dropped, "click", "purchase", "--option unclicked_purchases", keep))
