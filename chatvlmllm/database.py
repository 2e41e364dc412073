"""The one SQLite database (chats and their documents, the OCR cache) and its numbered schema migrations.

The file is `settings().database_path`; `chatvlmllm.chat.store` and `chatvlmllm.documents.ocr_cache` open it
and call `migrate` first, so every table is created here and nowhere else.

Each migration is a function `mNNN_what(db)`, registered in order with `@migration`. The
`_migrations` table records the name and time of every one applied; `migrate(db)` applies
the ones not recorded yet, each in its own transaction together with its record, so a crash
leaves either both or neither. Migrations are never edited once released: a change of
schema is a new function at the end of the list.

The first one is the schema as it was before migrations existed (recorded then as
`PRAGMA user_version = 1`): it creates its tables only if missing, so a database from that
time upgrades in place. Other modules may keep their own tables in the same file; the
migrations touch only the tables they name.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)

MigrationStep = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migration:
    name: str
    apply: MigrationStep


MIGRATIONS: list[Migration] = []


def migration(step: MigrationStep) -> MigrationStep:
    """Register `step` as the next migration, named after the function."""
    if any(known.name == step.__name__ for known in MIGRATIONS):
        raise ValueError(f"a migration named {step.__name__} is already registered")
    MIGRATIONS.append(Migration(step.__name__, step))
    return step


def applied(db: sqlite3.Connection) -> list[str]:
    """The names of the migrations recorded in this database, in the order they were applied."""
    _ensure_table(db)
    return [name for (name,) in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply the migrations this database lacks, in order; returns the names applied now.

    `db` must not be inside a transaction. Each migration takes the write lock first and
    checks its record again, so two processes opening the same file apply it once.
    """
    _ensure_table(db)
    done = set(applied(db))
    now_applied = []
    for step in migrations if migrations is not None else MIGRATIONS:
        if step.name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (step.name,)).fetchone() is None:
                step.apply(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    (step.name, datetime.now(UTC).isoformat(timespec="seconds")),
                )
                now_applied.append(step.name)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    if now_applied:
        log.info("chat history migrated: %s", ", ".join(now_applied))
    return now_applied


def _ensure_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")


# -- the migrations, oldest first -------------------------------------------------------------
@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Sessions, their turns (JSON) and their documents (bytes): the schema of user_version 1."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS sessions (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            active_document TEXT,
            pages TEXT NOT NULL DEFAULT '[1]'
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS turns (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (session_id, position)
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS documents (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            sha256 TEXT NOT NULL,
            name TEXT NOT NULL,
            data BLOB NOT NULL,
            added_at TEXT NOT NULL,
            PRIMARY KEY (session_id, sha256)
        )"""
    )


@migration
def m002_ocr_pages(db: sqlite3.Connection) -> None:
    """Offline OCR results per page and engine settings (`chatvlmllm.documents.ocr_cache`). Databases from
    before this migration may already have the table, created then by the cache itself."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS ocr_pages (
            key TEXT PRIMARY KEY,
            engine TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )


@migration
def m003_document_index(db: sqlite3.Connection) -> None:
    """Whole-document reading and retrieval (`chatvlmllm.documents.index`): one row per document being read
    (`document_reads`: its page count and the job's state, so a read resumes after a restart), one row per
    page read (`document_pages`: where its text came from, why, and its lines with boxes), and the full-text
    index (`passages`, SQLite FTS5 with BM25) over lines and blocks of lines, stemmed at index time."""
    db.execute(
        """CREATE TABLE document_reads (
            document TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            page_count INTEGER NOT NULL,
            state TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE document_pages (
            document TEXT NOT NULL,
            page INTEGER NOT NULL,
            source TEXT NOT NULL,
            data TEXT NOT NULL,
            read_at TEXT NOT NULL,
            PRIMARY KEY (document, page)
        )"""
    )
    db.execute(
        """CREATE VIRTUAL TABLE passages USING fts5(
            terms,
            document UNINDEXED,
            page UNINDEXED,
            kind UNINDEXED,
            text UNINDEXED,
            boxes UNINDEXED,
            tokenize = 'unicode61 remove_diacritics 2'
        )"""
    )
