"""``python -m mtlrec``: the command line, as ``mtlrec`` (and what ``torchrun -m mtlrec train``
starts in every process)."""

from mtlrec.cli.main import entry

entry()
