from __future__ import annotations

import typer

NAME = "models"


def run() -> None:
    """List the registered models with a one-line description and their hyperparameters."""
    from mtlrec.hyper import keyword_parameters
    from mtlrec.models import MODELS

    for name in MODELS.names():
        cls = MODELS.get(name)
        params = ", ".join(f"{p.name}={p.default!r}" for p in keyword_parameters(cls).values())
        typer.echo(f"{name:16} {cls.description}\n{'':16} {params}")
