"""Chat history migrations: an old database upgrades in place, a new migration runs once.

`OLD_SCHEMA` is test data: the DDL of the store before migrations existed (commit 8045ccf,
`chatvlmllm/store.py`, recorded as `PRAGMA user_version = 1`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from chatvlmllm import database as migrations
from chatvlmllm.chat.conversation import Conversation, Turn
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.database import Migration, applied, migrate, migration

OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    active_document TEXT,
    pages TEXT NOT NULL DEFAULT '[1]'
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, position)
);
CREATE TABLE IF NOT EXISTS documents (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (session_id, sha256)
);
PRAGMA user_version = 1;
"""
OLD_TURN: dict[str, object] = {
    "role": "user",
    "text": "What is the total?",
    "model": None,
    "attempts": [],
    "metrics": {},
    "document": "receipt.png",
    "document_sha256": "ab" * 32,
    "pages": [1],
    "started_at": "2026-11-20T10:00:00.000+00:00",
    "finished_at": None,
    "error": None,
    "settings": {},
    "extras": {},
}


def write_old_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO sessions VALUES ('old-chat', 'Receipt', ?, ?, ?, '[2]')",
            ("2026-11-20T10:00:00Z", "2026-11-20T10:01:00Z", "ab" * 32),
        )
        db.execute("INSERT INTO turns VALUES ('old-chat', 0, 'user', ?)", (json.dumps(OLD_TURN),))
        db.execute(
            "INSERT INTO documents VALUES ('old-chat', ?, 'receipt.png', ?, '2026-11-20T10:00:00Z')",
            ("ab" * 32, b"\x89PNG not really"),
        )
    db.close()


def read(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


RELEASED = ["m001_initial", "m002_ocr_pages", "m003_document_index"]


def test_the_released_migrations_are_the_registered_ones():
    assert [step.name for step in migrations.MIGRATIONS] == RELEASED


def test_a_database_from_before_migrations_opens_and_is_upgraded(tmp_path):
    path = tmp_path / "chats.sqlite3"
    write_old_database(path)
    store = ChatStore(path)
    assert [name for (name,) in read(path, "SELECT name FROM _migrations")] == RELEASED
    stored = store.load("old-chat")
    assert stored.conversation.title == "Receipt" and stored.pages == [2]
    assert stored.conversation.turns[0].text == "What is the total?"
    assert stored.documents["ab" * 32].data == b"\x89PNG not really"
    store.append_turn(stored.conversation, Turn("assistant", "12.50"))  # and it takes new turns
    assert [t.text for t in ChatStore(path).load("old-chat").conversation.turns] == ["What is the total?", "12.50"]


def test_a_new_migration_is_applied_once_to_a_current_database(tmp_path, monkeypatch):
    path = tmp_path / "chats.sqlite3"
    conversation = Conversation()
    conversation.add(Turn("user", "hello"))
    ChatStore(path).save_conversation(conversation)  # written by the current schema
    assert read(path, "PRAGMA user_version") == [(len(RELEASED),)]

    monkeypatch.setattr(migrations, "MIGRATIONS", list(migrations.MIGRATIONS))  # this test's list only
    runs = []

    @migration
    def m900_pinned_sessions(db: sqlite3.Connection) -> None:
        runs.append(path)
        db.execute("ALTER TABLE sessions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    for _ in range(3):  # every open checks; only the first applies
        store = ChatStore(path)
    assert len(runs) == 1
    assert [name for (name,) in read(path, "SELECT name FROM _migrations ORDER BY rowid")] == [
        *RELEASED,
        "m900_pinned_sessions",
    ]
    assert read(path, "SELECT id, pinned FROM sessions") == [(conversation.id, 0)]
    assert read(path, "PRAGMA user_version") == [(len(RELEASED) + 1,)]
    assert [t.text for t in store.load(conversation.id).conversation.turns] == ["hello"]


def test_a_failing_migration_leaves_neither_its_change_nor_its_record(tmp_path):
    db = sqlite3.connect(tmp_path / "chats.sqlite3")

    def m900_half_done(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE sessions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE no_such_table SET x = 1")  # fails after the first change

    steps = [*migrations.MIGRATIONS, Migration("m900_half_done", m900_half_done)]
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(db, steps)
    assert applied(db) == RELEASED
    assert "pinned" not in [row[1] for row in db.execute("PRAGMA table_info(sessions)")]
    db.close()


def test_a_migration_name_is_registered_once(monkeypatch):
    monkeypatch.setattr(migrations, "MIGRATIONS", list(migrations.MIGRATIONS))
    with pytest.raises(ValueError, match="m001_initial"):

        @migration
        def m001_initial(db: sqlite3.Connection) -> None:
            pass


def test_the_ocr_cache_table_is_a_migration_and_an_old_cache_table_is_kept(tmp_path):
    from PIL import Image

    from chatvlmllm.documents.ocr_cache import OcrCache, page_key

    # A file the OCR cache wrote before ocr_pages was a migration: its rows stay readable.
    path = tmp_path / "chats.sqlite3"
    write_old_database(path)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE ocr_pages (key TEXT PRIMARY KEY, engine TEXT NOT NULL, data TEXT NOT NULL,"
        " created_at TEXT NOT NULL)"
    )
    key = page_key(Image.new("RGB", (4, 4)), {"engine": "rapidocr"})
    db.execute("INSERT INTO ocr_pages VALUES (?, 'rapidocr', '{\"text\": \"old\"}', '2026-01-01')", (key,))
    db.commit()
    db.close()
    assert OcrCache(path).get(key) == {"text": "old"}
    assert [name for (name,) in read(path, "SELECT name FROM _migrations ORDER BY rowid")] == RELEASED

    # A new file gets the table from the migration, before the cache writes to it.
    fresh = tmp_path / "fresh.sqlite3"
    OcrCache(fresh).put(key, "rapidocr", {"text": "new"})
    assert [name for (name,) in read(fresh, "SELECT name FROM _migrations ORDER BY rowid")] == RELEASED
    assert OcrCache(fresh).get(key) == {"text": "new"}
