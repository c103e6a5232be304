"""The ``mtlrec`` command: one file per subcommand; errors print one line and exit non-zero."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import warnings
from pathlib import Path

import typer

import mtlrec
import mtlrec.cli
from mtlrec.errors import MtlrecError

DISTRIBUTED = ("train",)  # the commands that run under torchrun, one model over several processes

try:  # newer typer vendors click: its usage errors derive from typer.TyperException
    from typer import TyperException as UsageError
except ImportError:  # older typer raises click's own
    from click import ClickException as UsageError

app = typer.Typer(
    name="mtlrec",
    help="Multi-task learning for e-commerce recommendation: train, evaluate, predict.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def command_help(doc: str | None) -> tuple[str, str]:
    """(help, short help) from a command's docstring, written as paragraphs: a paragraph's line
    breaks are where the source wrapped it, so they become spaces and the help box wraps the text
    to the terminal instead (kept, they leave a ragged half-line in every box); a paragraph that
    begins with \\b keeps its lines (a literal block, as in click). The short help, in the list
    of ``mtlrec --help``, is the first paragraph."""
    paragraphs = [p for p in inspect.cleandoc(doc or "").split("\n\n") if p.strip()] or [""]
    flowed = [p.removeprefix("\b").strip("\n") if p.startswith("\b") else " ".join(p.split()) for p in paragraphs]
    return "\n\n".join(flowed), flowed[0]


# every module of mtlrec.cli with NAME and run() is a subcommand
for info in pkgutil.iter_modules(mtlrec.cli.__path__):
    module = importlib.import_module(f"mtlrec.cli.{info.name}")
    if hasattr(module, "NAME"):
        text, short = command_help(module.run.__doc__)
        app.command(name=module.NAME, help=text, short_help=short)(module.run)


def _version(value: bool) -> None:
    if value:
        print(f"mtlrec {mtlrec.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Multi-task learning for e-commerce recommendation."""


PACKAGE = Path(mtlrec.__file__).resolve().parent


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """mtlrec's own warnings as one line, like its errors ("warning: ..."); others as Python shows them."""
    mine = issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(PACKAGE)
    text = f"warning: {message}\n" if mine else warnings.formatwarning(message, category, filename, lineno, line)
    (sys.stderr if file is None else file).write(text)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for a user error)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's (mtlrec.distributed; read here without torch)
    if processes > 1 and args and args[0] not in DISTRIBUTED:
        print(f"error: mtlrec {args[0]} runs in one process; under torchrun (WORLD_SIZE={processes}) only "
              f"{', '.join(DISTRIBUTED)} does", file=sys.stderr)  # fmt: skip
        return 2
    try:
        app(args=argv, prog_name="mtlrec", standalone_mode=False)
    except MtlrecError as err:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every process has it: rank 0 says it
            print(f"error: {err}", file=sys.stderr)
        return 2
    except typer.Exit as ex:
        return ex.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as err:
        if hasattr(err, "show"):
            err.show()
        else:
            print(f"error: {err.format_message()}", file=sys.stderr)
        return err.exit_code
    return 0


def entry() -> None:
    sys.exit(main())
