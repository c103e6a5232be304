from __future__ import annotations

import typer

NAME = "datasets"


def run() -> None:
    """List the data sources (data.source): the built-in simulator, your own file, and the public
    data set adapters, with what data.path must be, their tasks and options (data.<source>.<option>)."""
    from mtlrec.data.sources import SOURCES
    from mtlrec.hyper import keyword_parameters

    for name in SOURCES.names():
        cls = SOURCES.get(name)
        typer.echo(f"{name:20} {cls.description}")
        if cls.path_help:
            typer.echo(f"{'':20} path: {cls.path_help}")
        if cls.tasks:
            typer.echo(f"{'':20} tasks: {', '.join(cls.tasks)}")
        params = ", ".join(f"{p.name}={p.default!r}" for p in keyword_parameters(cls).values())
        if params:
            typer.echo(f"{'':20} options: {params}")
