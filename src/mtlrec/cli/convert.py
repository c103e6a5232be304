from __future__ import annotations

from pathlib import Path

import typer

from mtlrec.errors import ConfigError

NAME = "convert"
PART_ROWS, ROW_GROUP = 1_000_000, 65_536


def run(
    source: str = typer.Argument(..., help="The data source whose format the file has (mtlrec datasets lists them)."),
    path: Path = typer.Argument(..., help="One file of that source, e.g. Ali-CCP's raw train file."),
    out: Path = typer.Option(
        ..., "--out", help="A directory of part-00001.parquet, ... (replaced once all are written)."
    ),
    part_rows: int = typer.Option(PART_ROWS, "--part-rows", help="Rows per Parquet file (row groups of 65,536)."),
    options: list[str] = typer.Option(
        [], "--option", help="A source option as KEY=VALUE (see mtlrec datasets), e.g. unclicked_purchases=keep."
    ),
) -> None:
    """Convert a public data set's file into Parquet parts, block by block (memory: one part, whatever
    the file's size), for data.source: file to stream (configs/ali_ccp_stream.yaml)."""
    import yaml

    from mtlrec.config import DataConfig
    from mtlrec.data.readers import write_parts
    from mtlrec.data.sources import SOURCES
    from mtlrec.hyper import build_registered

    if part_rows < 1:
        raise ConfigError(f"--part-rows: expected an integer >= 1, got {part_rows}")
    section = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {option!r}: expected KEY=VALUE")
        section[key] = yaml.safe_load(value)
    cfg = DataConfig.model_validate({"source": source, source: section})
    adapter = build_registered(SOURCES, cfg, "data")
    rows = write_parts(out, adapter.blocks(path, part_rows), row_group_size=ROW_GROUP)
    print(f"wrote {rows:,} rows of {path} to {out}")
