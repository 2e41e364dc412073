"""An answer's text cut into what a page draws differently: prose, tables, JSON and code blocks.

A model asked for "Table → Markdown" writes GitHub-style pipe tables; one asked for "Key fields →
JSON" writes JSON, bare or in a ```json fence. A view should draw the table as a table (with its
CSV and its Markdown to copy) and the JSON once, formatted, not the raw pipes and fences. The cutting
is done by markdown-it-py (CommonMark with the GFM table rule) on the top-level blocks, so what counts
as a table or a fence is what any Markdown renderer would draw; the text between them stays as written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

log = logging.getLogger(__name__)

JSON_LANGUAGES = frozenset({"json", "jsonc", "json5"})


class PartKind(StrEnum):
    TEXT = "text"  # Markdown prose, as written
    TABLE = "table"  # a pipe table: cells, CSV and its Markdown source
    JSON = "json"  # a JSON value that parses (bare, or in a fence)
    CODE = "code"  # any other fenced block (a ```json one that does not parse included), verbatim


@dataclass(frozen=True)
class Table:
    """A Markdown table's cells as plain text (emphasis and code ticks dropped), header first."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    markdown: str  # the table as the answer wrote it: what "copy as Markdown" gives

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def column_names(self) -> list[str]:
        """The header made usable as column names: unique, and a blank header stays blank.

        Tables need distinct column names; a repeated header gets " (2)", and blank ones become
        distinct runs of spaces, which still read as blank.
        """
        names: list[str] = []
        for index, cell in enumerate(self.header):
            name = cell or " " * (index + 1)  # cells are stripped: no header is spaces only
            copy = 2
            while name in names:
                name, copy = f"{cell} ({copy})", copy + 1
            names.append(name)
        return names


@dataclass(frozen=True)
class AnswerPart:
    kind: PartKind
    text: str  # the part's source text (a fence's content, without the fence lines)
    table: Table | None = None
    value: Any = None  # the parsed JSON value (kind JSON)
    language: str | None = None  # a fence's language, if it names one
    problem: str | None = None  # why a ```json block is shown as code: it does not parse

    def pretty_json(self) -> str:
        """The JSON value indented, non-ASCII kept (Cyrillic stays readable)."""
        return json.dumps(self.value, indent=2, ensure_ascii=False)


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def split_answer(text: str) -> list[AnswerPart]:
    """The answer's parts in order; prose around tables and fences kept as TEXT parts."""
    whole = _bare_json(text)
    if whole is not None:
        return [whole]
    lines = text.splitlines()
    tokens = _markdown().parse(text)
    parts: list[AnswerPart] = []
    done = 0  # lines before this one are in a part already
    for start, end, part in _blocks(tokens, lines):
        _add_text(parts, lines[done:start])
        parts.append(part)
        done = end
    _add_text(parts, lines[done:])
    return parts


def has_structure(text: str) -> bool:
    """Whether the answer holds a table or a JSON value (drawn as such, not as plain text)."""
    return any(part.kind in (PartKind.TABLE, PartKind.JSON) for part in split_answer(text))


def _add_text(parts: list[AnswerPart], lines: Sequence[str]) -> None:
    chunk = "\n".join(lines).strip("\n")
    if chunk.strip():
        parts.append(AnswerPart(PartKind.TEXT, chunk))


def _bare_json(text: str) -> AnswerPart | None:
    """A whole answer that is one JSON object or array (a model told to output only the JSON)."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return AnswerPart(PartKind.JSON, stripped, value=value, language="json")


def _blocks(tokens: Sequence[Token], lines: Sequence[str]) -> Iterator[tuple[int, int, AnswerPart]]:
    """(first line, end line, part) of every top-level table and fenced block."""
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.level == 0 and token.map is not None and token.type == "table_open":
            close = next(i for i in range(index, len(tokens)) if tokens[i].type == "table_close")
            start, end = token.map
            table = _table(tokens[index:close], "\n".join(lines[start:end]))
            yield start, end, AnswerPart(PartKind.TABLE, table.markdown, table=table)
            index = close
        elif token.level == 0 and token.map is not None and token.type == "fence":
            start, end = token.map
            yield start, end, _fence(token)
        index += 1


def _table(tokens: Sequence[Token], markdown: str) -> Table:
    rows: list[tuple[str, ...]] = []
    cells: list[str] = []
    for token in tokens:
        if token.type == "tr_open":
            cells = []
        elif token.type == "inline":
            cells.append(_plain(token))
        elif token.type == "tr_close":
            rows.append(tuple(cells))
    header, *body = rows or [()]
    return Table(header, tuple(body), markdown)


def _plain(inline: Token) -> str:
    """A cell as a reader sees it: its text, without the emphasis or code-tick markup."""
    pieces = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append(" ")
    return "".join(pieces).strip()


def _fence(token: Token) -> AnswerPart:
    language = token.info.strip().split(" ")[0].lower() or None
    content = token.content.rstrip("\n")
    if language in JSON_LANGUAGES or (language is None and content.lstrip().startswith(("{", "["))):
        try:
            return AnswerPart(PartKind.JSON, content, value=json.loads(content), language="json")
        except (ValueError, RecursionError) as exc:
            if language is not None:  # asked to be JSON and is not: shown as written, with the reason
                return AnswerPart(PartKind.CODE, content, language=language, problem=f"not valid JSON: {exc}")
    return AnswerPart(PartKind.CODE, content, language=language)
