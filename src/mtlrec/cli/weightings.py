from __future__ import annotations

import typer

NAME = "weightings"


def run() -> None:
    """List the registered loss-weighting methods: description, cost per training step, and
    hyperparameters (set them with --set weighting.<name>.<parameter>=VALUE)."""
    from mtlrec.hyper import keyword_parameters
    from mtlrec.weighting import WEIGHTINGS

    for name in WEIGHTINGS.names():
        cls = WEIGHTINGS.get(name)
        params = ", ".join(f"{p.name}={p.default!r}" for p in keyword_parameters(cls).values())
        typer.echo(f"{name:12} {cls.description}\n{'':12} cost: {cls.cost}")
        if params:
            typer.echo(f"{'':12} {params}")
