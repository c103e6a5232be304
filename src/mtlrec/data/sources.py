"""Where an experiment's rows come from: the built-in shop simulator, a CSV/Parquet file, or a
public data set adapter. Each source may provide a default schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa

from mtlrec.config import DataConfig
from mtlrec.errors import ConfigError
from mtlrec.registry import Registry
from mtlrec.spec import Schema


@dataclass(frozen=True)
class Source:
    table: pa.Table
    schema: Schema | None  # the source's default schema, if it has one
    name: str  # how errors refer to it, e.g. the file name


Loader = Callable[[DataConfig], Source]
SOURCES: Registry[Loader] = Registry("data source")


@SOURCES.register("synthetic")
def _synthetic(cfg: DataConfig) -> Source:
    from mtlrec.data.synthetic import default_schema, simulate

    s = cfg.synthetic
    table = simulate(
        rows=s.rows, users=s.users, items=s.items, categories=s.categories, brands=s.brands,
        page_size=s.page_size, correlation=s.correlation, seed=s.seed,
    )
    return Source(table, default_schema(s.categories), "synthetic data")


@SOURCES.register("file")
def _file(cfg: DataConfig) -> Source:
    from mtlrec.data.readers import read_table

    if not cfg.path:
        raise ConfigError("data.path: required when data.source is 'file'")
    return Source(read_table(cfg.path), None, Path(cfg.path).name)


def load_source(cfg: DataConfig) -> Source:
    return SOURCES.get(cfg.source)(cfg)
