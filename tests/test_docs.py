"""The docs cannot drift: every ``mtlrec`` command in README.md's and docs/'s code blocks parses
against the real command line (known command, known options, the arguments it takes, values of
the right type), every ``mtlrec`` command quoted inline names known options, and every relative
link points to a file (and heading) that exists."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from mtlrec.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
OPERATORS = {";", "&", "&&", "|", "||", "(", ")"}  # end one command, start the next
STARTS_COMMAND = re.compile(r"\s*([A-Za-z_]\w*=\S*\s+)*(\S*/)?mtlrec\s")  # [VAR=value ...] [path/]mtlrec
PLACEHOLDER = "..."  # "--set ..." or "mtlrec train ... --resume": an elided value or argument


@dataclass(frozen=True)
class Command:
    """One ``mtlrec`` command found in a page: where, and its arguments after ``mtlrec``."""

    page: Path
    line: int
    args: tuple[str, ...]

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page}:{self.line}"


def code_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(1-based line of the block's first line, its lines) for every fenced code block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            if current is None:
                current, start = [], number + 1
            else:
                blocks.append((start, current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) for every line outside fenced code blocks (fences excluded)."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def _tokens(source: str) -> list[str]:
    """Shell words and operators, comments dropped; ValueError on an unclosed quote."""
    lexer = shlex.shlex(source, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    return list(lexer)


def _commands_in(tokens: list[str]) -> list[list[str]]:
    """The ``mtlrec`` commands among shell words: split at operators, redirections and their
    targets dropped, ``VAR=value`` prefixes skipped, ``mtlrec`` or a path ending in it."""
    found, current, skip = [], [], False
    if tokens and tokens[0] in OPERATORS:  # "| a | b |": a table row, not a shell line
        return []
    for token in [*tokens, ";"]:
        if skip:
            skip = False
        elif token in OPERATORS:
            while current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", current[0]):
                current.pop(0)
            if current and Path(current[0]).name == "mtlrec":
                found.append(current[1:])
            current = []
        elif token[0] in "<>":
            skip = True  # the redirection's target
            if current and current[-1].isdigit():  # 2>&1: the descriptor is not an argument
                current.pop()
        else:
            current.append(token)
    return found


def commands(page: Path, text: str | None = None) -> list[Command]:
    """Every ``mtlrec`` command in the page's code blocks. A line ending in a backslash continues on
    the next; ``$ `` prompts are removed; a command whose quote spans lines (a JSON body) is read
    to its closing quote. Lines that are not commands (output, JSON) are passed over."""
    text = page.read_text(encoding="utf-8") if text is None else text
    out: list[Command] = []
    for start, lines in code_blocks(text):
        i = 0
        while i < len(lines):
            number, source = start + i, lines[i].removeprefix("$ ")
            while source.endswith("\\") and i + 1 < len(lines):
                i += 1
                source = source[:-1] + " " + lines[i].strip()
            i += 1
            if "mtlrec" not in source:
                continue
            try:
                tokens = _tokens(source)
            except ValueError:  # an unclosed quote: a command goes on to the closing one
                if not STARTS_COMMAND.match(source):
                    continue  # a line of output or of another command's quoted body
                while i < len(lines):
                    source += "\n" + lines[i]
                    i += 1
                    try:
                        tokens = _tokens(source)
                        break
                    except ValueError:
                        continue
                else:
                    out.append(Command(page, number, ("<unclosed quote>",)))
                    continue
            out += [Command(page, number, tuple(args)) for args in _commands_in(tokens)]
    return out


@functools.cache
def _root():
    """The click command behind ``mtlrec`` (typer builds it from the app)."""
    return typer.main.get_command(app)


def _options(command) -> set[str]:
    """Every option a click command takes (``--save`` and ``--no-save`` both), and ``--help``."""
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}


def _takes_value(command, option: str) -> bool:
    return any(option in p.opts and not getattr(p, "is_flag", False) for p in command.params)


def problem(cmd: Command) -> str | None:
    """Why the command would not parse (None when it does): parsed as ``mtlrec`` parses it, up to
    running it; elided values (``--set ...``) stand for any value, an elided argument is left out."""
    root = _root()
    args = list(cmd.args)
    if not args:
        return None
    if args[0].startswith("-"):  # options of mtlrec itself (--version, --help)
        unknown = [a for a in args if a not in _options(root)]
        return f"unknown option(s) of mtlrec: {' '.join(unknown)}" if unknown else None
    root_ctx = root.make_context("mtlrec", [args[0]], resilient_parsing=True)
    sub = root.get_command(root_ctx, args[0])
    if sub is None:
        return f"unknown command {args[0]!r} (known: {', '.join(sorted(root.list_commands(root_ctx)))})"
    kept: list[str] = []
    for arg in args[1:]:
        if arg == PLACEHOLDER:
            if kept and _takes_value(sub, kept[-1]):
                kept.append("PLACEHOLDER")
            continue
        kept.append(arg)
    if "--help" in kept:
        kept = [a for a in kept if a != "--help"]
    try:
        sub.make_context(f"mtlrec {args[0]}", kept, parent=root_ctx)
    except Exception as err:  # click's (or typer's vendored click's) usage errors
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        return f"mtlrec {args[0]}: {message}"
    return None


def inline_commands(page: Path, text: str | None = None) -> list[Command]:
    """``mtlrec ...`` in inline code outside code blocks, e.g. a table's `mtlrec train CONFIG [--out DIR]`."""
    text = page.read_text(encoding="utf-8") if text is None else text
    return [
        Command(page, number, tuple(m.split()))
        for number, line in prose_lines(text)
        for m in re.findall(r"`mtlrec ([^`]+)`", line)
    ]


def inline_problem(cmd: Command) -> str | None:
    """An inline command is a synopsis (CONFIG, [--out DIR], a|b): only its command and the
    options it names are checked; a command in capitals (``mtlrec COMMAND --help``) stands for any."""
    if cmd.args[0].isupper():
        return None
    root = _root()
    ctx = root.make_context("mtlrec", [], resilient_parsing=True)
    sub = root if cmd.args[0].startswith("-") else root.get_command(ctx, cmd.args[0])
    if sub is None:
        return f"unknown command {cmd.args[0]!r}"
    known = _options(sub)
    options = {m for a in cmd.args for m in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", a)}
    unknown = sorted(options - known)
    return f"unknown option(s) of mtlrec {cmd.args[0]}: {', '.join(unknown)}" if unknown else None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation but ``-`` and ``_``
    dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The page's heading anchors; a repeated heading's get -1, -2, ... as on GitHub."""
    counts: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        if m := re.match(r"#{1,6}\s+(.*?)\s*#*$", line):
            base = slug(m.group(1))
            out.add(f"{base}-{counts[base]}" if base in counts else base)
            counts[base] = counts.get(base, 0) + 1
    return out


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """Relative links and images (outside code) whose file, or heading anchor, does not exist."""
    text = page.read_text(encoding="utf-8") if text is None else text
    out = []
    for number, line in prose_lines(text):
        prose = re.sub(r"`[^`]*`", "``", line)
        for target in re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                out.append(f"{page.name}:{number}: {target}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                out.append(f"{page.name}:{number}: {target}: no heading #{anchor} in {file.name}")
    return out


# --- the real docs ------------------------------------------------------------------------------

ALL = [c for page in PAGES for c in commands(page)]


def test_the_docs_have_commands_to_check():
    assert ROOT / "docs" / "README.md" in PAGES
    assert {c.page for c in ALL} >= {ROOT / "README.md"}
    assert len({c.page for c in ALL}) > 1


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: c.where())
def test_every_documented_command_parses(cmd: Command):
    found = problem(cmd)
    assert found is None, f"{cmd.where()}: mtlrec {' '.join(cmd.args)}\n{found}"


def test_every_inline_command_names_known_options():
    found = [c for page in PAGES for c in inline_commands(page)]
    assert found
    problems = [f"{c.where()}: `mtlrec {' '.join(c.args)}`: {p}" for c in found if (p := inline_problem(c))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file(page: Path):
    assert not broken_links(page), "\n".join(broken_links(page))


# --- the checker itself ---------------------------------------------------------------------------


def _check(markdown: str, tmp_path: Path) -> list[str | None]:
    page = tmp_path / "page.md"
    page.write_text(markdown)
    return [problem(c) for c in commands(page)]


def test_a_made_up_option_fails(tmp_path: Path):
    [found] = _check("```\nmtlrec train configs/synthetic.yaml --out runs/x --no-such-flag\n```\n", tmp_path)
    assert found and "--no-such-flag" in found


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mtlrec trian configs/synthetic.yaml", "unknown command 'trian'"),
        ("mtlrec evaluate runs/x data.parquet surplus", "unexpected extra argument"),
        ("mtlrec simulate --rows many --out x.parquet", "--rows"),
        ("mtlrec serve", "RUN"),  # its argument is required
        ("mtlrec --verison", "--verison"),
    ],
)
def test_other_mistakes_fail(tmp_path: Path, line: str, expected: str):
    [found] = _check(f"```\n{line}\n```\n", tmp_path)
    assert found and expected.lower() in found.lower(), found


def test_shell_syntax_is_read_as_the_shell_reads_it(tmp_path: Path):
    markdown = """
```bash
$ mtlrec train configs/synthetic.yaml \\
    --set train.epochs=1 --out runs/x   # a comment --not-an-option
mtlrec train configs/synthetic.yaml --set ... --out runs/x --resume
ln -sfn day7 runs/current; PYTHONPATH=src mtlrec serve runs/current --watch > log 2>&1 &
.venv/bin/mtlrec frontier runs/x logs.parquet --keep 'click>=0.98' --k 10
curl -d '{
  "rows": [{"note": "mtlrec --bogus is inside a quote"}]}'
mtlrec score runs/x -d '{
  "k": 2}'
| mtlrec is not a command in a table row |
```
"""
    page = tmp_path / "page.md"
    page.write_text(markdown)
    found = commands(page)
    assert [c.args[0] for c in found] == ["train", "train", "serve", "frontier", "score"]
    assert found[0].args == ("train", "configs/synthetic.yaml", "--set", "train.epochs=1", "--out", "runs/x")
    assert found[0].line == 3
    assert found[3].args[-3:] == ("click>=0.98", "--k", "10")
    assert [problem(c) for c in found[:4]] == [None] * 4
    assert "unknown command 'score'" in problem(found[4])


def test_inline_commands_check_their_options(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("| `mtlrec train CONFIG [--set KEY=VALUE ...] [--out DIR]` | ok |\n"
                    "| `mtlrec predict RUN DATA --lists [--tpo 10]` | misspelt |\n"
                    "```\n`mtlrec train --in-a-block`\n```\n")  # fmt: skip
    found = inline_commands(page)
    assert [inline_problem(c) for c in found] == [None, "unknown option(s) of mtlrec predict: --tpo"]


def test_broken_links_are_found(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Serving speed\n\n## Serving speed\n")
    (tmp_path / "docs" / "plot.png").write_bytes(b"")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n[ok](other.md) [ok](other.md#serving-speed) [ok](other.md#serving-speed-1) ![ok](plot.png)\n"
        "[ok](#page) [web](https://example.com/x.md) `[code](missing.md)`\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) ![gone](docs/plot.png)\n"
        "```\n[in a block](missing.md)\n```\n"
    )
    assert broken_links(page) == [
        "page.md:4: missing.md: no such file",
        "page.md:4: other.md#nowhere: no heading #nowhere in other.md",
        "page.md:4: docs/plot.png: no such file",
    ]


def test_slugs_follow_github():
    assert slug("Ranking: fusion, the Pareto frontier and several lists") == (
        "ranking-fusion-the-pareto-frontier-and-several-lists"
    )
    assert slug("Measured: eleven methods on a `conflicting` shop") == "measured-eleven-methods-on-a-conflicting-shop"
    assert slug("Census-Income") == "census-income"
    assert slug("`single_task` and [links](x.md)") == "single_task-and-links"
