"""AliExpress search logs (Tianchi 74690; the AliExpress_NL/ES/FR/US files of the PLE-era MTL
benchmarks): CSV with a header ``search_id, categorical_1..16, numerical_1..63, click, conversion``.

``categorical_*`` columns become categorical features, ``numerical_*`` numeric ones (other columns
stay in the table, out of the default schema); GAUC and NDCG@10 group by ``search_id`` (one query's
results: a search ranker is judged on its order within the query). Tasks: ``click`` and
``conversion`` on clicked rows. ``data.path``: one CSV (split by ``data.split``) or a
folder with a train and a test file (and optionally a validation one; names holding 'train', 'test',
'val'); without a validation file the test file is halved with ``data.split.seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.config import DataConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.datasets._files import (
    binary,
    drop_unclicked,
    file_or_split_files,
    numbers,
    read_delimited,
)
from mtlrec.data.sources import SOURCES, DataSource, Source
from mtlrec.errors import DataError
from mtlrec.spec import DEFAULT_METRICS, FeatureSpec, Schema, TaskSpec

LABELS = ("click", "conversion")
GROUP = "search_id"


def default_schema(columns: list[str]) -> Schema:
    features = [FeatureSpec(c, "categorical") for c in columns if c.startswith("categorical_")]
    features += [FeatureSpec(c, "numeric") for c in columns if c.startswith("numerical_")]
    grouped = GROUP in columns
    metrics = DEFAULT_METRICS["binary"] + (("ndcg@10",) if grouped else ())  # ranking by query
    tasks = (TaskSpec("click", "binary", metrics=metrics), TaskSpec("conversion", "binary", where="click", metrics=metrics))
    return Schema(tuple(features), tasks, group=GROUP if grouped else None)


def read_aliexpress(path: Path) -> pa.Table:
    raw, file = read_delimited(path)
    missing = [c for c in LABELS if c not in raw.column_names]
    if missing or not any(c.startswith(("categorical_", "numerical_")) for c in raw.column_names):
        raise DataError(
            f"{path} line 1: expected a header with search_id, categorical_*, numerical_*, click, conversion; "
            f"got {', '.join(raw.column_names[:6])}{' ...' if raw.num_columns > 6 else ''}"
        )
    cols: dict[str, object] = {}
    for name in raw.column_names:
        if name in LABELS:
            cols[name] = binary(raw, name, file)
        elif name.startswith("numerical_"):
            cols[name] = numbers(raw, name, file, missing=True)
        else:
            cols[name] = pc.utf8_trim_whitespace(raw[name])
    return pa.table(cols)


@SOURCES.register("aliexpress")
class AliExpress(DataSource):
    description = "AliExpress search logs: click and post-click conversion, 16 categorical + 63 numeric fields"
    path_help = "one AliExpress CSV, or a folder with train/test (and optional val) CSVs"
    tasks = ("click", "conversion (where click)")

    def __init__(self, *, unclicked_conversions: Literal["drop", "keep"] = "drop") -> None:
        self.unclicked_conversions = unclicked_conversions

    def _read(self, path: Path) -> tuple[pa.Table, RowOrigin]:
        option = "data.aliexpress.unclicked_conversions"
        keep = self.unclicked_conversions == "keep"
        return drop_unclicked(read_aliexpress(path), "click", "conversion", path, option, keep)

    def load(self, cfg: DataConfig) -> Source:
        return file_or_split_files(cfg, self.registered_name, self._read, lambda t: default_schema(t.column_names))
