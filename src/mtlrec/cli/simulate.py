from __future__ import annotations

from pathlib import Path

import typer

from mtlrec.errors import ConfigError
from mtlrec.progress import QUIET_HELP, Progress

NAME = "simulate"
ROWS, ROWS_PER_DAY = 200_000, 100_000
PART_ROWS, ROW_GROUP = 1_000_000, 65_536  # rows per file and per row group of a directory of parts


def run(
    out: Path = typer.Option(
        ..., "--out",
        help="Output .parquet or .csv (list columns become '|'-joined text); a directory (no such suffix): "
        "part-00001.parquet, ... of --part-rows rows each, written one part at a time; with --days, a directory "
        "that gets day-01.parquet, day-02.parquet, ...",
    ),
    rows: int = typer.Option(
        None, "--rows", help=f"Impressions (default {ROWS:,}; with --days, {ROWS_PER_DAY:,} a day)."
    ),
    users: int = typer.Option(20_000, "--users"),
    items: int = typer.Option(10_000, "--items"),
    correlation: float = typer.Option(0.5, "--correlation", help="How much purchase shares click's drivers (0..1)."),
    seed: int = typer.Option(0, "--seed"),
    days: int = typer.Option(
        None, "--days", help="Log one shop that changes over N days, one file per day (see --drift, --churn)."
    ),
    drift: float = typer.Option(
        None, "--drift",
        help="With --days: how fast interests, price sensitivity, brand trust, price levels and demand drift, "
        "per day: each keeps a correlation exp(-drift) with the day before (0: no drift; default 0.1).",
    ),
    churn: float = typer.Option(
        None, "--churn", help="With --days: share of the catalogue replaced by new items each day (default 0.02)."
    ),
    part_rows: int = typer.Option(
        PART_ROWS, "--part-rows", help="With --out a directory: rows per Parquet file (row groups of 65,536)."
    ),
    sales_out: Path = typer.Option(
        None, "--sales-out",
        help="With --days N (N > 7): also write the item x day sales table (.parquet or .csv): units and revenue "
        "per item on sale per day from day 8 on, with lags of units, clicks and views from earlier days only and "
        "the expected units (oracle_units); see mtlrec.data.sales.",
    ),
    applications: bool = typer.Option(
        False, "--applications",
        help="Also price_sensitivity, title and item_categories with their oracle_* columns (docs/applications.md); "
        "the other columns stay as they are without it.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Write impressions from the built-in shop simulator (with its ground-truth oracle_* columns) to a file,
    or, with --days, one file per day from one shop that changes."""
    progress = Progress.auto(quiet)
    if days is None:
        for option, value in (("--drift", drift), ("--churn", churn), ("--sales-out", sales_out)):
            if value is not None:
                raise ConfigError(f"{option} applies only with --days (one file per day from a shop that changes)")
        if out.is_dir() or not out.suffix:
            _parts(out, ROWS if rows is None else rows, part_rows, users, items, correlation, seed, applications,
                   progress)  # fmt: skip
        else:
            _one_file(out, ROWS if rows is None else rows, users, items, correlation, seed, applications, progress)
    else:
        _days(out, days, ROWS_PER_DAY if rows is None else rows, users, items, correlation, seed, drift, churn,
              sales_out, applications, progress)  # fmt: skip


def _one_file(
    out: Path, rows: int, users: int, items: int, correlation: float, seed: int, applications: bool,
    progress: Progress,
) -> None:  # fmt: skip
    from mtlrec.data.readers import write_table
    from mtlrec.data.synthetic import simulate

    try:
        with progress.bar(f"simulating {rows:,} impressions", unit=None):  # one call: the time it takes
            table = simulate(rows=rows, users=users, items=items, correlation=correlation, seed=seed,
                             applications=applications)  # fmt: skip
    except ValueError as err:
        raise ConfigError(str(err)) from None
    with progress.bar(f"writing {out}", unit=None):
        write_table(table, out)
    print(f"wrote {table.num_rows:,} impressions to {out}")


def _parts(
    out: Path, rows: int, part_rows: int, users: int, items: int, correlation: float, seed: int, applications: bool,
    progress: Progress,
) -> None:
    """``rows`` impressions of one stationary shop in Parquet files of ``part_rows`` rows, drawn and
    written one file at a time (memory: one part, whatever ``rows``)."""
    from mtlrec.data.readers import write_table
    from mtlrec.data.shop_days import simulate_days

    if rows < 1 or part_rows < 1:
        raise ConfigError(f"--rows and --part-rows: expected integers >= 1, got {rows} and {part_rows}")
    parts = -(-rows // part_rows)
    try:
        shop = simulate_days(days=parts, rows=part_rows, users=users, items=items, correlation=correlation,
                             drift=0.0, churn=0.0, seed=seed, applications=applications)  # fmt: skip
        width, left = max(5, len(str(parts))), rows
        with progress.bar(f"simulating {parts} parts", rows) as bar:
            for part in shop:
                table = part.table.slice(0, min(left, part_rows))
                write_table(table, out / f"part-{part.day:0{width}d}.parquet", row_group_size=ROW_GROUP)
                left -= table.num_rows
                bar.advance(table.num_rows)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    print(f"wrote {rows:,} impressions to {out} ({parts} Parquet files)")


def _days(
    out: Path, days: int, rows: int, users: int, items: int, correlation: float, seed: int,
    drift: float | None, churn: float | None, sales_out: Path | None, applications: bool, progress: Progress,
) -> None:  # fmt: skip
    import pyarrow as pa

    from mtlrec.data.readers import write_table
    from mtlrec.data.sales import HISTORY, SalesDays
    from mtlrec.data.shop_days import CHURN, DRIFT, MAX_DRIFT, simulate_days

    drift = DRIFT if drift is None else drift
    churn = CHURN if churn is None else churn
    if days < 1:
        raise ConfigError(f"--days: expected an integer >= 1, got {days}")
    if not 0 <= drift <= MAX_DRIFT:  # also rejects NaN
        raise ConfigError(f"--drift: expected a rate per day in [0, {MAX_DRIFT:g}] (0: no drift), got {drift}")
    if not 0 <= churn <= 1:
        raise ConfigError(f"--churn: expected a share of the catalogue in [0, 1], got {churn}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file; with --days, --out is a directory for one file per day")
    if out.suffix.lower() in (".parquet", ".pq", ".csv"):
        raise ConfigError(f"--out {out}: with --days, --out is a directory (day-01.parquet, ... go in it)")
    if sales_out is not None and days <= HISTORY:
        raise ConfigError(f"--sales-out: needs --days > {HISTORY} (rows start on day {HISTORY + 1}: each needs "
                          f"{HISTORY} earlier days of history), got --days {days}")  # fmt: skip
    if sales_out is not None and sales_out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ConfigError(f"--sales-out {sales_out}: expected a .parquet or .csv file")
    try:
        shop = simulate_days(
            days=days, rows=rows, users=users, items=items, correlation=correlation, drift=drift, churn=churn,
            seed=seed, applications=applications,
        )  # fmt: skip
    except ValueError as err:
        raise ConfigError(str(err)) from None

    width = max(2, len(str(days)))
    total = 0
    sales, sold = SalesDays(), []
    with progress.bar(f"simulating {days} days", days * rows) as bar:
        for day in shop:
            path = out / f"day-{day.day:0{width}d}.parquet"
            write_table(day.table, path)
            total += day.table.num_rows
            bar.advance(day.table.num_rows)
            print(
                f"{path}: {day.table.num_rows:,} impressions, {day.items_on_sale:,} items on sale "
                f"(+{day.new_items:,} new, -{day.left_items:,} gone), +{day.new_brands} brands"
            )
            rows_sold = sales.add(day) if sales_out is not None else None
            sold += [rows_sold] if rows_sold is not None else []
    print(f"wrote {days} days ({total:,} impressions, drift {drift:g}, churn {churn:g}) to {out}")
    if sales_out is not None:
        table = pa.concat_tables(sold)
        write_table(table, sales_out)
        print(f"wrote {table.num_rows:,} item-days (days {HISTORY + 1}-{days}) to {sales_out}")

