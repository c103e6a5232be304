"""Side tables: attribute tables (users.csv, items.parquet) joined onto the interaction log as it is
read, by a key column (``data.join: [{path: users.csv, on: user_id}]``).

Each side table is held in memory with an index of its keys (keys compared as text, as categorical
values are: ``42``, ``42.0`` and ``"42"`` are one key); the log is joined a table at a time (the
whole file in memory, a piece at a time in a stream), so the join costs one lookup per log row.

- A log row whose key is not in the side table (or is missing) gets missing values in the side
  table's columns, which the encoder reads as it reads any missing value; how many rows had no
  match is counted and reported.
- A column the log has itself is kept as the log has it (the log wins over a side table, as a
  request's own fields win in the service); a column two side tables both give is an error.
- A side table must have one row per key: a key on two rows is an error naming the file, the key
  value and both rows.

A run trained with side tables keeps them in its run directory (``side/`` and ``side.json``), so
that ``predict``, ``evaluate`` and the service fill in the attributes of rows that give only keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.data.columns import RowOrigin, Where, as_strings, require_columns, shown
from mtlrec.data.lookup import VocabLookup, lookup_column
from mtlrec.errors import ConfigError, DataError, RunError

if TYPE_CHECKING:
    from mtlrec.config import JoinConfig
    from mtlrec.data.pieces import Piece
    from mtlrec.data.sources import Source
    from mtlrec.spec import FeatureSpec

MANIFEST = "side.json"  # in a run directory: the side tables, their keys and files
FOLDER = "side"


@dataclass
class SideTable:
    """One side table: its key column ``on`` and its other columns, indexed by key."""

    name: str  # what errors call it: the file's name
    on: str
    table: pa.Table  # the key column first, then the columns it adds
    look: VocabLookup  # key text -> row + 1

    @classmethod
    def of(cls, table: pa.Table, name: str, on: str, columns: Sequence[str] | None = None) -> "SideTable":
        """``table`` as a side table keyed by ``on`` (checked: key present, one row per key)."""
        take = [c for c in (table.column_names if columns is None else columns) if c != on]
        require_columns(table, [on, *take], f"{name} (a side table keyed by '{on}')")
        table = table.select([on, *take])
        keys = as_strings(table[on], on, name).combine_chunks()
        missing = np.flatnonzero(~np.asarray(keys.is_valid()))
        if len(missing):
            raise DataError(f"column '{on}' in {name} row {missing[0] + 1}: expected a key, got a missing value")
        counts = pc.value_counts(keys)
        twice = np.flatnonzero(np.asarray(counts.field("counts")) > 1)
        if len(twice):
            value = counts.field("values")[int(twice[0])].as_py()
            rows = np.flatnonzero(np.asarray(pc.equal(keys, value)))
            raise DataError(
                f"{name}: key '{on}' value {shown(table[on][int(rows[0])].as_py())} is on more than one row "
                f"(rows {rows[0] + 1} and {rows[1] + 1}); a side table has one row per key"
            )
        return cls(name, on, table, VocabLookup(keys.to_pylist()))

    @classmethod
    def read(cls, path: str | Path, on: str, columns: Sequence[str] | None = None) -> "SideTable":
        from mtlrec.data.readers import read_table

        return cls.of(read_table(path), Path(path).name, on, columns)

    @property
    def columns(self) -> list[str]:
        """The columns it adds (all but the key)."""
        return self.table.column_names[1:]

    def join(self, log: pa.Table, where: Where, columns: Sequence[str] | None = None) -> tuple[pa.Table, int]:
        """``log`` with this table's columns (those in ``columns``, default all) that it lacks, and
        how many of its rows had no match."""
        add = [c for c in self.columns if c not in log.column_names and (columns is None or c in columns)]
        if self.on not in log.column_names:
            raise DataError(
                f"{RowOrigin.of(where).name}: no column '{self.on}' to join {self.name} on "
                f"(has: {', '.join(log.column_names[:12])}{' ...' if log.num_columns > 12 else ''})"
            )
        rows = lookup_column(self.look, log[self.on], self.on, where)  # [N] row + 1, 0: no match
        index = pa.array(rows - 1, mask=rows == 0)
        for c in add:
            log = log.append_column(self.table.schema.field(c), self.table[c].take(index))
        return log, int(np.count_nonzero(rows == 0))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "on": self.on, "columns": self.columns, "rows": self.table.num_rows}


class Joiner:
    """The side tables of an experiment or a run, joined onto any table of log rows (``__call__``);
    counts the log rows it joined and, per side table, those without a match."""

    def __init__(self, tables: Sequence[SideTable]) -> None:
        self.tables = list(tables)
        given: dict[str, str] = {}
        for side in self.tables:
            for c in side.columns:
                if c in given:
                    raise ConfigError(f"data.join: column '{c}' is in {given[c]} and in {side.name}; "
                                      f"take it from one of them (columns: [...])")  # fmt: skip
                given[c] = side.name
        self.rows = 0
        self.unmatched = [0] * len(self.tables)

    @classmethod
    def from_config(cls, joins: Sequence["JoinConfig"] | None) -> "Joiner | None":
        """The side tables ``data.join`` names, read (None without any)."""
        if not joins:
            return None
        tables = []
        for i, j in enumerate(joins):
            if not Path(j.path).is_file():
                raise ConfigError(f"data.join.{i}.path: {j.path} is not a file (a CSV or Parquet side table)")
            tables.append(SideTable.read(j.path, j.on, j.columns))
        return cls(tables)

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(side.on for side in self.tables))

    @property
    def columns(self) -> list[str]:
        """Every column the side tables add."""
        return [c for side in self.tables for c in side.columns]

    def __call__(self, table: pa.Table, where: Where, columns: Sequence[str] | None = None) -> pa.Table:
        for i, side in enumerate(self.tables):
            table, missed = side.join(table, where, columns)
            self.unmatched[i] += missed
        self.rows += table.num_rows
        return table

    def reader(self, read: Callable[["Piece", Sequence[str]], Iterator[tuple[pa.Table, int]]]) -> Callable:
        """``read`` (data/pieces.py ``read_piece``) with the side tables joined onto each table it
        reads: the keys are read too, and of the side tables' columns those asked for are added."""

        def joined(piece: "Piece", columns: Sequence[str]) -> Iterator[tuple[pa.Table, int]]:
            for table, first in read(piece, list(dict.fromkeys([*columns, *self.keys]))):
                yield self(table, RowOrigin(piece.name, np.arange(first, first + table.num_rows)), columns), first

        return joined

    def join_source(self, source: "Source") -> "Source":
        """A source's rows (and its predefined splits) with the side tables joined on."""
        from dataclasses import replace

        if source.splits is None:
            return replace(source, table=self(source.table, source.origin))
        splits = {name: self(t, source.split_origins[name]) for name, t in source.splits.items()}
        return replace(source, table=pa.concat_tables(list(splits.values()), promote_options="permissive"),
                       splits=splits)  # fmt: skip

    def check(self, features: Sequence["FeatureSpec"]) -> None:
        """Read each side-table column a feature reads as the encoder will, so that a bad value is
        an error naming the side table's file and row (not the log row it would be joined onto)."""
        from mtlrec.data.encode import feature_numbers, feature_values

        for side in self.tables:
            for f in features:
                if f.source in side.columns:
                    read = feature_numbers if f.kind == "numeric" else feature_values
                    read(side.table[f.source], f, side.name)

    def report(self) -> list[str]:
        """One line per side table some log rows found no match in."""
        lines = []
        for side, missed in zip(self.tables, self.unmatched):
            if missed:
                share = f"{missed / self.rows:.1%}" if self.rows else "0%"
                lines.append(
                    f"data.join {side.name}: {missed:,} of {self.rows:,} log rows ({share}) find no match for their "
                    f"'{side.on}' there; their {side.name} columns are missing values"
                )
        return lines

    def summary(self) -> list[dict[str, Any]]:
        """What side.json records: each table, and how many log rows it matched."""
        return [{**side.describe(), "file": f"{FOLDER}/{i}-{Path(side.name).stem}.parquet",
                 "log_rows": self.rows, "unmatched": missed}
                for i, (side, missed) in enumerate(zip(self.tables, self.unmatched))]  # fmt: skip

    def save(self, run_dir: Path) -> None:
        """The side tables as Parquet in ``run_dir/side/``, and ``side.json`` naming them."""
        import pyarrow.parquet as pq

        from mtlrec.artifacts import atomic_path, write_json

        summary = self.summary()
        for side, entry in zip(self.tables, summary):
            with atomic_path(run_dir / entry["file"]) as tmp:
                pq.write_table(side.table, tmp)
        write_json(run_dir / MANIFEST, {"format": 1, "tables": summary})

    @classmethod
    def load(cls, run_dir: Path) -> "Joiner | None":
        """A run's side tables (None for a run trained without any)."""
        from mtlrec.artifacts import read_json
        from mtlrec.data.readers import read_table

        path = Path(run_dir) / MANIFEST
        if not path.is_file():
            return None
        manifest = read_json(path)
        try:
            entries = [(e["file"], e["name"], e["on"]) for e in manifest["tables"]]
        except (KeyError, TypeError) as err:
            raise RunError(f"{path}: not a valid list of side tables ({err!r})") from None
        return cls([SideTable.of(read_table(Path(run_dir) / f), name, on) for f, name, on in entries])
