from __future__ import annotations

from pathlib import Path

import typer

NAME = "simulate"


def run(
    out: Path = typer.Option(..., "--out", help="Output .parquet or .csv (list columns become '|'-joined text)."),
    rows: int = typer.Option(200_000, "--rows"),
    users: int = typer.Option(20_000, "--users"),
    items: int = typer.Option(10_000, "--items"),
    correlation: float = typer.Option(0.5, "--correlation", help="How much purchase shares click's drivers (0..1)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write impressions from the built-in shop simulator (with its ground-truth oracle_* columns) to a file."""
    from mtlrec.data.readers import write_table
    from mtlrec.data.synthetic import simulate

    table = simulate(rows=rows, users=users, items=items, correlation=correlation, seed=seed)
    write_table(table, out)
    print(f"wrote {table.num_rows:,} impressions to {out}")
