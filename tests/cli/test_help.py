"""`mtlrec --help` and every command's --help read as prose: no ragged lines. A line is ragged when
the next line's first word would have fitted on it, as when a docstring's hard line breaks survive
into a help box ("... print and" / "write (compare.md, ...) each task's test metric, ... with the" /
"lift over ..."). The checker itself is shown to catch exactly that."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from mtlrec.cli.main import app, command_help

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COMMANDS = sorted(c.name for c in app.registered_commands)


def render(application: typer.Typer, args: list[str], width: int) -> str:
    result = CliRunner().invoke(application, args, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.output)
    assert max(len(line) for line in text.splitlines()) == width
    return text


def _ragged_pairs(lines: list[str], width: int) -> list[tuple[str, str]]:
    """(line, next line) pairs of one paragraph where the next line's first word fits on the line."""
    pairs = []
    for a, b in zip(lines, lines[1:]):
        if a and b and not b.startswith("[") and len(a) + 1 + len(b.split()[0]) <= width:
            pairs.append((a, b))
    return pairs


def ragged(text: str) -> list[tuple[str, str]]:
    """Every ragged pair in rendered help: in the prose above the boxes (lines of the console's
    width, less one column each side), and in each box's last column (a command's description, an
    option's help), row by row; '[default: ...]' and '[required]' start lines of their own."""
    lines = text.splitlines()
    width = max(len(line) for line in lines)
    found: list[tuple[str, str]] = []
    prose: list[str] = []
    for line in lines:
        if line.startswith((" Usage:", "╭", "│", "╰")) or not line.strip():
            found += _ragged_pairs(prose, width - 2)
            prose = []
        else:
            prose.append(line[1:].rstrip())
    found += _ragged_pairs(prose, width - 2)
    for box in re.findall(r"╭[^\n]*\n((?:│[^\n]*\n)+)╰", text):
        rows = box.splitlines()
        starts = [len(r) - len(r[1:].lstrip()) for r in rows if len(r) - len(r[1:].lstrip()) > 8]
        if not starts:  # every row fits on one line
            continue
        column = min(starts)  # where the last column begins: its continuation lines start there
        cell_width = len(rows[0]) - 2 - column
        cell: list[str] = []
        for row in rows:
            if row[1:column].strip():  # a new row: the columns before the last one have text
                found += _ragged_pairs(cell, cell_width)
                cell = []
            cell.append(row[column:-1].rstrip())
        found += _ragged_pairs(cell, cell_width)
    return found


@pytest.mark.parametrize("width", [80, 100, 140])
def test_no_ragged_lines_in_any_help(width):
    screens = {"mtlrec": render(app, ["--help"], width)}
    screens |= {name: render(app, [name, "--help"], width) for name in COMMANDS}
    assert len(screens) == len(COMMANDS) + 1 >= 14
    for name, text in screens.items():
        assert "Usage:" in text and "╭─ Options" in text, (name, text)
        assert ragged(text) == [], f"{name} --help at {width} columns:\n{text}"
    listed = screens["mtlrec"]
    for name in COMMANDS:  # every command is in the list, with its description on a line of its own
        assert re.search(rf"(?m)^│ {name}\s+\S", listed), name


def test_the_checker_catches_hard_line_breaks():
    """The docstrings as they are written, line breaks kept (what typer showed before): ragged at
    every width; mtlrec's reflowed help of the same docstring: not."""
    from mtlrec.cli import compare, simulate

    raw = typer.Typer(add_completion=False)
    reflowed = typer.Typer(add_completion=False)
    for module in (compare, simulate):
        raw.command(name=module.NAME, help=module.run.__doc__)(module.run)
        text, short = command_help(module.run.__doc__)
        reflowed.command(name=module.NAME, help=text, short_help=short)(module.run)
    for width in (80, 100, 140):
        assert ragged(render(raw, ["--help"], width)), width
        assert ragged(render(reflowed, ["--help"], width)) == [], width


def test_command_help_reflows_paragraphs_and_keeps_literal_blocks():
    doc = """Train a model from a YAML
    config and write a run directory.

    The run directory holds
    the weights.

    \b
    runs/x/config.yaml
    runs/x/model.safetensors
    """
    text, short = command_help(doc)
    assert short == "Train a model from a YAML config and write a run directory."
    assert text == (f"{short}\n\nThe run directory holds the weights.\n\n"
                    "runs/x/config.yaml\nruns/x/model.safetensors")  # fmt: skip
    assert command_help(None) == ("", "") and command_help("  One line.  ") == ("One line.", "One line.")
