"""The run's side tables in the service: a request's row (or context) that gives a key (``user_id``,
``item_id``) but not the attributes a side table holds for it gets them from the table, so that a
request may send only ids. A field the request gives itself, even null, is kept (the request wins);
a key not in the table gives missing values, as an unmatched log row did in training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from mtlrec.data.join import Joiner
from mtlrec.serve.columns import value_index


@dataclass(frozen=True)
class _Side:
    name: str
    on: str
    columns: tuple[str, ...]  # the request fields it can fill
    index: dict[Any, int]  # key (its text, or the int it is the text of) -> row + 1
    values: dict[str, list[Any]]  # column -> its values, as Python values


class SideFill:
    """Fills request rows from a run's side tables; only the ``fields`` of the request."""

    def __init__(self, joiner: Joiner, fields: Sequence[str]) -> None:
        self.sides = []
        for side in joiner.tables:
            columns = tuple(c for c in side.columns if c in fields)
            keys = [str(k) for k in side.look.vocab]
            self.sides.append(_Side(side.name, side.on, columns, value_index(keys),
                                    {c: side.table[c].to_pylist() for c in columns}))  # fmt: skip

    @property
    def columns(self) -> set[str]:
        """The fields a side table can fill (optional in requests)."""
        return {c for s in self.sides for c in s.columns}

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(s.on for s in self.sides))

    def source(self, column: str) -> tuple[str, str] | None:
        """(side table name, key) of the table that fills ``column``."""
        return next(((s.name, s.on) for s in self.sides if column in s.columns), None)

    def fill(self, row: Mapping[str, Any], skip: Sequence[str] = ()) -> Mapping[str, Any]:
        """``row`` with the fields it lacks (those not in ``skip``) from the side tables, by the
        keys it gives; the row itself where there is nothing to fill."""
        added: dict[str, Any] = {}
        for s in self.sides:
            if s.on not in row:
                continue
            missing = [c for c in s.columns if c not in row and c not in skip]
            if missing:
                key = row[s.on]
                i = s.index.get(key, 0) if key is not None else 0
                added.update({c: s.values[c][i - 1] if i else None for c in missing})
        return {**row, **added} if added else row
