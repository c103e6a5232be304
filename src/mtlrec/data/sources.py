"""Where an experiment's rows come from: the built-in shop simulator, a CSV/Parquet file, or a
public data set adapter (``mtlrec.data.datasets``). Each source may provide a default schema and
predefined train/valid/test splits (e.g. a data set's own train and test files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from mtlrec.config import DataConfig, SplitConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.split import split_table
from mtlrec.errors import ConfigError
from mtlrec.registry import Registry
from mtlrec.spec import Schema


@dataclass(frozen=True)
class Source:
    table: pa.Table  # every row (with predefined splits: their concatenation)
    schema: Schema | None  # the source's default schema, if it has one
    origin: RowOrigin  # where the rows of ``table`` come from (with predefined splits: only its name counts)
    splits: dict[str, pa.Table] | None = None  # predefined train/valid/test; None: split by data.split
    split_origins: dict[str, RowOrigin] | None = None  # where the rows of each predefined split come from

    def __post_init__(self) -> None:
        if (self.splits is None) != (self.split_origins is None):
            raise ValueError("Source: predefined splits need their split_origins")

    @property
    def name(self) -> str:
        """How errors refer to the source as a whole, e.g. the file name."""
        return self.origin.name

    def split(self, cfg: SplitConfig) -> tuple[dict[str, pa.Table], dict[str, RowOrigin]]:
        """The train/valid/test tables (the predefined ones first, else ``table`` split by ``cfg``)
        and where the rows of each come from."""
        if self.splits is not None:
            return self.splits, self.split_origins
        return split_table(self.table, cfg, self.origin)


class DataSource:
    """One kind of source. Options are typed keyword-only ``__init__`` arguments, configured in the
    section ``data.<name>``; ``load`` reads ``data.path`` (and ``data.split`` where it splits itself)."""

    registered_name: str
    description: str = ""
    path_help: str = ""  # what data.path must point at (empty: not read)
    tasks: tuple[str, ...] = ()  # the default schema's tasks

    def load(self, cfg: DataConfig) -> Source:
        raise NotImplementedError

    def blocks(self, path: Path, rows: int) -> Iterator[pa.Table]:
        """The rows of one file of this source's own format, ``rows`` at a time, as ``load`` would
        have them (for ``mtlrec convert``: Parquet parts that ``data.source: file`` streams)."""
        raise ConfigError(
            f"data source '{self.registered_name}' has no block-by-block conversion (its rows are built from the "
            f"whole file); load it with data.source: {self.registered_name}"
        )


SOURCES: Registry[DataSource] = Registry("data source")


@SOURCES.register("synthetic")
class SyntheticSource(DataSource):
    description = "built-in shop simulator with ground-truth probabilities (options: data.synthetic)"
    tasks = ("click", "add_to_cart", "purchase", "order_value", "user_segment", "interests")

    def load(self, cfg: DataConfig) -> Source:
        from mtlrec.data.synthetic import default_schema, simulate

        s = cfg.synthetic
        try:
            table = simulate(
                rows=s.rows, users=s.users, items=s.items, categories=s.categories, brands=s.brands,
                page_size=s.page_size, correlation=s.correlation, seed=s.seed, applications=s.applications,
            )
        except ValueError as err:  # "simulate: rows must be >= page_size (10), got 5"
            raise ConfigError(f"data.synthetic: {str(err).split(': ', 1)[-1]}") from None
        return Source(table, default_schema(s.categories), RowOrigin("synthetic data"))


@SOURCES.register("file")
class FileSource(DataSource):
    description = "your own impressions: one CSV or Parquet file, described by the config's schema"
    path_help = "a .csv/.csv.gz/.tsv/.parquet file (header row)"

    def load(self, cfg: DataConfig) -> Source:
        from mtlrec.data.readers import read_table

        if not cfg.path:
            raise ConfigError("data.path: required when data.source is 'file'")
        return Source(read_table(cfg.path), None, RowOrigin(Path(cfg.path).name))


def load_source(cfg: DataConfig) -> Source:
    """Build ``cfg.source`` with its options (every ``data.<source>`` section present is checked)."""
    from mtlrec.hyper import build_registered

    return build_registered(SOURCES, cfg, "data").load(cfg)


def require_path(cfg: DataConfig) -> Path:
    """``data.path`` as a Path that exists, or a ConfigError saying what the source expects."""
    source = SOURCES.get(cfg.source)
    if not cfg.path:
        raise ConfigError(f"data.path: required when data.source is '{cfg.source}' ({source.path_help})")
    path = Path(cfg.path)
    if not path.exists():
        raise ConfigError(f"data.path: {path} does not exist (data.source '{cfg.source}' reads {source.path_help})")
    return path


from mtlrec.data import datasets as _datasets  # noqa: E402,F401  (registers the public data set adapters)
