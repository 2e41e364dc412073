"""Each document's pages, read once, and a full-text index over them, in the chats' SQLite file.

Tables (migration `m003_document_index` of `chatvlmllm.database`):

- `document_reads`: one row per document being read: name, page count, the reading job's state. A job
  that was stopped (Cancel, a crash, `kill -9`) resumes from here: the pages already stored are not read
  again.
- `document_pages`: one row per page read: where its text came from (`PageSource`), why (the text-layer
  check's verdict), the reader, and its lines with boxes in page pixels. This is the OCR cache's
  per-document extension: the OCR cache (`ocr_cache`) keys an engine's raw result by page pixels; this
  table keeps what a document's page finally reads as, from whichever source.
- `passages`: SQLite FTS5 (BM25 ranking) over every line and every block of lines (consecutive lines of
  one paragraph or column), each with its document, page and boxes. The indexed column holds the
  passage's stemmed terms (`lexicon.terms`: Snowball stemmers for Russian and English), tokenised by
  unicode61 with diacritics removed; a question is stemmed the same way.

A page's row and its passages are written in one transaction, so the index never holds half a page.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import statistics
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from chatvlmllm.database import migrate
from chatvlmllm.documents.layer_check import LayerVerdict
from chatvlmllm.documents.lexicon import query_terms, terms
from chatvlmllm.documents.text_layer import Box, TextLine
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

BLOCK_MAX_LINES = 6
BLOCK_GAP_HEIGHTS = 1.2  # a vertical gap over this many line heights starts a new block
CANDIDATES = 60  # passages BM25 ranks before overlaps are dropped


class PageSource(StrEnum):
    """Where a page's text came from."""

    TEXT_LAYER = "text layer"
    OCR = "ocr"
    NONE = "none"  # neither a usable layer nor an OCR engine


class ReadState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PassageKind(StrEnum):
    LINE = "line"
    BLOCK = "block"


@dataclass(frozen=True)
class PageText:
    """One page as read: its lines with boxes, where they came from and why."""

    page: int  # 1-based
    source: PageSource
    lines: list[TextLine]
    reader: str  # "pdf text layer", or the OCR engine and its reader ("ocr_auto: tesseract")
    verdict: LayerVerdict | None = None  # the text-layer check (None: the page had no layer to check)
    size_px: tuple[int, int] = (0, 0)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def why(self) -> str:
        """Which source and why, for a person."""
        layer = self.verdict.reason() if self.verdict else "no text layer"
        return layer if self.source is PageSource.TEXT_LAYER else f"{layer}; read by {self.reader}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "source": self.source.value,
            "reader": self.reader,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "size_px": list(self.size_px),
            "lines": [line.to_list() for line in self.lines],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageText:
        verdict = data.get("verdict")
        width, height = data.get("size_px") or (0, 0)
        return cls(
            page=int(data["page"]),
            source=PageSource(data["source"]),
            lines=[TextLine.from_list(item) for item in data["lines"]],
            reader=str(data["reader"]),
            verdict=LayerVerdict.from_dict(verdict) if verdict else None,
            size_px=(int(width), int(height)),
        )


@dataclass(frozen=True)
class Passage:
    """A retrieved line or block: its document, page, text and line boxes, and its BM25 score (higher is better)."""

    document: str  # sha256
    page: int
    kind: PassageKind
    text: str
    boxes: list[Box]
    score: float

    @property
    def box(self) -> Box:
        return union(self.boxes)


@dataclass(frozen=True)
class ReadStatus:
    """How far a document's reading got (what an answer from the pages read so far must say)."""

    document: str
    name: str
    page_count: int
    pages_read: int
    state: ReadState
    sources: dict[str, int] = field(default_factory=dict)  # PageSource value → pages

    @property
    def complete(self) -> bool:
        return self.pages_read >= self.page_count


def union(boxes: Sequence[Box]) -> Box:
    if not boxes:
        return (0.0, 0.0, 0.0, 0.0)
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def blocks(lines: Sequence[TextLine]) -> list[list[TextLine]]:
    """Consecutive lines grouped into blocks: a new block after a vertical gap of over BLOCK_GAP_HEIGHTS line
    heights, a line that does not overlap the previous one horizontally, or BLOCK_MAX_LINES lines."""
    if not lines:
        return []
    height = statistics.median(max(1.0, line.box[3] - line.box[1]) for line in lines)
    groups: list[list[TextLine]] = [[lines[0]]]
    for previous, line in itertools.pairwise(lines):
        gap = line.box[1] - previous.box[3]
        overlaps = line.box[0] < previous.box[2] and previous.box[0] < line.box[2]
        if len(groups[-1]) >= BLOCK_MAX_LINES or gap > BLOCK_GAP_HEIGHTS * height or gap < -height or not overlaps:
            groups.append([line])
        else:
            groups[-1].append(line)
    return groups


class DocumentIndex:
    """The pages and passages of every document read, in the SQLite file at `path` (default: the chats' file).

    One short connection per call, so Streamlit sessions, a reading thread and the CLI can share the file."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else settings().database_path
        self._migrated = False
        self._local = threading.local()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (kept open: closing the last connection of a WAL file checkpoints it,
        which cost more than the writes themselves when a job stored its pages)."""
        db = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            if not self._migrated:
                migrate(db)
                self._migrated = True
            db.execute("PRAGMA journal_mode=WAL")  # questions read while the reading job writes
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        yield db

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- reading state ----------------------------------------------------------------------------
    def begin_read(self, document: str, name: str, page_count: int) -> set[int]:
        """Record that `document` is being read; returns the pages already stored (to skip)."""
        with self._connect() as db, db:
            db.execute(
                "INSERT INTO document_reads (document, name, page_count, state, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(document) DO UPDATE SET name = excluded.name, page_count = excluded.page_count,"
                " state = excluded.state, updated_at = excluded.updated_at",
                (document, name, page_count, ReadState.RUNNING.value, _now()),
            )
            return {page for (page,) in db.execute("SELECT page FROM document_pages WHERE document = ?", (document,))}

    def set_state(self, document: str, state: ReadState) -> None:
        with self._connect() as db, db:
            db.execute(
                "UPDATE document_reads SET state = ?, updated_at = ? WHERE document = ?",
                (state.value, _now(), document),
            )

    def save_pages(self, document: str, pages: Sequence[PageText]) -> None:
        """Store pages and their passages, all or nothing."""
        page_rows = []
        passage_rows = []
        for page in pages:
            page_rows.append(
                (document, page.page, page.source.value, json.dumps(page.to_dict(), ensure_ascii=False), _now())
            )
            passage_rows.extend(_passage_rows(document, page))
        with self._connect() as db, db:
            # Passages' document and page are not indexed columns: delete only pages stored before (a re-read).
            marks = ",".join("?" * len(pages))
            stored = db.execute(
                f"SELECT page FROM document_pages WHERE document = ? AND page IN ({marks})",
                (document, *(page.page for page in pages)),
            ).fetchall()
            db.executemany("DELETE FROM passages WHERE document = ? AND page = ?", [(document, p) for (p,) in stored])
            db.executemany(
                "INSERT OR REPLACE INTO document_pages (document, page, source, data, read_at) VALUES (?, ?, ?, ?, ?)",
                page_rows,
            )
            db.executemany(
                "INSERT INTO passages (terms, document, page, kind, text, boxes) VALUES (?, ?, ?, ?, ?, ?)",
                passage_rows,
            )

    def status(self, document: str) -> ReadStatus | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT name, page_count, state FROM document_reads WHERE document = ?", (document,)
            ).fetchone()
            if row is None:
                return None
            sources = dict(
                db.execute(
                    "SELECT source, COUNT(*) FROM document_pages WHERE document = ? GROUP BY source", (document,)
                ).fetchall()
            )
        return ReadStatus(document, row[0], row[1], sum(sources.values()), ReadState(row[2]), sources)

    def unfinished(self) -> list[ReadStatus]:
        """Documents whose reading stopped before the last page (to resume after a restart)."""
        with self._connect() as db:
            documents = [d for (d,) in db.execute("SELECT document FROM document_reads WHERE state != 'done'")]
        found = [self.status(document) for document in documents]
        return [status for status in found if status is not None and not status.complete]

    def page_text(self, document: str, page: int) -> PageText | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM document_pages WHERE document = ? AND page = ?", (document, page)
            ).fetchone()
        return PageText.from_dict(json.loads(row[0])) if row else None

    def forget(self, document: str) -> None:
        """Drop a document's pages and passages (it will be read again)."""
        with self._connect() as db, db:
            for table in ("passages", "document_pages", "document_reads"):
                db.execute(f"DELETE FROM {table} WHERE document = ?", (document,))

    # -- retrieval ----------------------------------------------------------------------------------
    def search(self, question: str, documents: Sequence[str], limit: int = 8) -> list[Passage]:
        """The passages of `documents` that best match `question` (BM25 over stemmed terms), best first, without
        a line that repeats a block already chosen."""
        wanted = query_terms(question)
        if not wanted or not documents:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in wanted)
        marks = ",".join("?" * len(documents))
        sql = (
            "SELECT document, page, kind, text, boxes, bm25(passages) FROM passages "
            f"WHERE passages MATCH ? AND document IN ({marks}) ORDER BY bm25(passages) LIMIT ?"
        )
        with self._connect() as db:
            try:
                rows = db.execute(sql, (f"terms : ({match})", *documents, CANDIDATES)).fetchall()
            except sqlite3.OperationalError as exc:  # a term FTS5 cannot parse: no match rather than a crash
                log.warning("full-text query %r failed: %s", match, exc)
                return []
        passages = [
            Passage(document, int(page), PassageKind(kind), text, [tuple(b) for b in json.loads(boxes)], -float(rank))
            for document, page, kind, text, boxes, rank in rows
        ]
        return _without_overlaps(passages, limit)


def _without_overlaps(passages: Sequence[Passage], limit: int) -> list[Passage]:
    """Best first, no line twice. A block that holds two or more lines already chosen takes their place (at
    the best one's rank, with its score): the answer shows the passage they belong to once."""
    chosen: list[Passage] = []
    for passage in passages:
        overlapping = [other for other in chosen if _overlaps(passage, other)]
        if not overlapping:
            if len(chosen) < limit:
                chosen.append(passage)
            continue
        inside = [o for o in overlapping if o.kind is PassageKind.LINE and set(o.boxes) <= set(passage.boxes)]
        if passage.kind is PassageKind.BLOCK and len(inside) >= 2 and len(inside) == len(overlapping):
            at = chosen.index(inside[0])
            merged = Passage(passage.document, passage.page, passage.kind, passage.text, passage.boxes, inside[0].score)
            chosen = [*chosen[:at], merged, *(o for o in chosen[at + 1 :] if o not in inside)]
    return chosen


def _overlaps(a: Passage, b: Passage) -> bool:
    """Two passages of the same page sharing a line (a line inside a block, or two blocks that meet)."""
    return a.document == b.document and a.page == b.page and bool(set(a.boxes) & set(b.boxes))


def _passage_rows(document: str, page: PageText) -> list[tuple[str, str, int, str, str, str]]:
    line_terms = {id(line): " ".join(terms(line.text)) for line in page.lines}  # each line stemmed once
    rows = [_row(document, page.page, PassageKind.LINE, [line], line_terms) for line in page.lines]
    for group in blocks(page.lines):
        if len(group) > 1:
            rows.append(_row(document, page.page, PassageKind.BLOCK, group, line_terms))
    return rows


def _row(
    document: str, page: int, kind: PassageKind, lines: Sequence[TextLine], line_terms: dict[int, str]
) -> tuple[str, str, int, str, str, str]:
    text = " ".join(line.text for line in lines)
    boxes = json.dumps([line.box for line in lines])
    return (" ".join(line_terms[id(line)] for line in lines), document, page, kind.value, text, boxes)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
