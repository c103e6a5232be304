"""What a report page holds (sections of figures, tables and notes; the sections it lacks, with the
reason) and how it becomes one HTML file: rendered by Jinja2 from ``page.html`` (autoescaped),
written atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One image: ``name`` says which figure it is (``data-figure`` in the page, for tests)."""

    name: str
    uri: str  # a data: URI
    alt: str


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""  # "nt" marks negative transfer, "num" right-aligns a number


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Section:
    """A titled part of the page: what it shows (``intro``), then its figures, tables and notes."""

    id: str
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Page:
    """``facts``: (label, value) lines under the title; ``absent``: (section, why) it is missing."""

    title: str
    facts: list[tuple[str, str]]
    sections: list[Section]
    absent: list[tuple[str, str]] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


def render(page: Page) -> str:
    """The page as one self-contained HTML document."""
    from importlib.resources import files

    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["code"] = _code
    template = env.from_string((files("mtlrec.report") / "page.html").read_text(encoding="utf-8"))
    return template.render(page=page)


def write_page(path: Path, page: Page) -> Path:
    """Render ``page`` into ``path`` atomically (a reader sees the old file or the new one, whole)."""
    from mtlrec.artifacts import write_text

    write_text(path, render(page))
    return path


def _code(text: str):
    """Escaped text with each `backquoted` span as <code>."""
    import re

    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
