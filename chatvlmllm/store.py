"""Local chat history: one SQLite file with sessions, their turns and their documents.

The file lives in the data directory: `$CHATVLMLLM_DATA_DIR`, else
`$XDG_DATA_HOME/chatvlmllm` (`~/.local/share/chatvlmllm`). Each completed turn is written
at once, and the uploaded document bytes are kept with the session, so a browser reload
or a server restart can continue any chat.

Every operation opens its own short connection: Streamlit runs each browser session on
its own thread, and SQLite connections must not cross threads.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chatvlmllm.conversation import Conversation, Turn, now_iso
from chatvlmllm.errors import UserError

DB_NAME = "chats.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
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
"""


def data_dir() -> Path:
    """Where chats and uploads are kept: $CHATVLMLLM_DATA_DIR or ~/.local/share/chatvlmllm."""
    explicit = os.environ.get("CHATVLMLLM_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "chatvlmllm"


@dataclass(frozen=True)
class SessionInfo:
    id: str
    title: str
    created_at: str
    updated_at: str
    turn_count: int


@dataclass
class StoredDocument:
    sha256: str
    name: str
    data: bytes = field(repr=False)


@dataclass
class StoredSession:
    conversation: Conversation
    documents: dict[str, StoredDocument]  # by sha256
    active_document: str | None
    pages: list[int]


class StoreError(UserError):
    """The chat history could not be read or written (locked database, full disk, ...)."""


class ChatStore:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error, StoreError) as exc:
            raise StoreError(
                f"Cannot open the chat history at {self.path}: {exc}. Set CHATVLMLLM_DATA_DIR to a writable folder."
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise StoreError(f"The chat history at {self.path} cannot be opened: {exc}.") from exc
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")  # readers do not wait for a writer
            with db:  # one transaction
                yield db
        except sqlite3.Error as exc:  # locked past the timeout, disk full, read-only folder, ...
            raise StoreError(f"The chat history at {self.path} could not be updated: {exc}.") from exc
        finally:
            db.close()

    # -- writing -----------------------------------------------------------
    def save_session(
        self, conversation: Conversation, active_document: str | None = None, pages: list[int] | None = None
    ) -> None:
        """Create or update the session row (title, times, document in use)."""
        with self._connect() as db:
            self._upsert_session(db, conversation)
            if active_document is not None or pages is not None:
                db.execute(
                    "UPDATE sessions SET active_document = ?, pages = ? WHERE id = ?",
                    (active_document, json.dumps(pages or [1]), conversation.id),
                )

    def append_turn(self, conversation: Conversation, turn: Turn) -> None:
        """Save one completed turn after the ones already stored.

        The position comes from the database, not from memory: two browser tabs on the
        same chat then interleave their turns instead of overwriting each other's.
        """
        with self._connect() as db:
            self._upsert_session(db, conversation)
            db.execute(
                """INSERT INTO turns (session_id, position, role, data)
                   SELECT ?, COALESCE(MAX(position), -1) + 1, ?, ? FROM turns WHERE session_id = ?""",
                (
                    conversation.id,
                    turn.role,
                    json.dumps(turn.to_dict(), ensure_ascii=False, default=str),
                    conversation.id,
                ),
            )

    def save_document(self, session_id: str, sha256: str, name: str, data: bytes) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO documents (session_id, sha256, name, data, added_at) VALUES (?, ?, ?, ?, ?)",
                (session_id, sha256, name, sqlite3.Binary(data), now_iso()),
            )

    def save_conversation(self, conversation: Conversation) -> None:
        """Write a whole conversation (an imported transcript), replacing any turns stored under its id."""
        with self._connect() as db:
            self._upsert_session(db, conversation)
            db.execute("DELETE FROM turns WHERE session_id = ?", (conversation.id,))
            db.executemany(
                "INSERT INTO turns (session_id, position, role, data) VALUES (?, ?, ?, ?)",
                [
                    (conversation.id, i, t.role, json.dumps(t.to_dict(), ensure_ascii=False, default=str))
                    for i, t in enumerate(conversation.turns)
                ],
            )

    @staticmethod
    def _upsert_session(db: sqlite3.Connection, conversation: Conversation) -> None:
        db.execute(
            """INSERT INTO sessions (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated_at = excluded.updated_at""",
            (conversation.id, conversation.title, conversation.created_at, conversation.updated_at),
        )

    def rename(self, session_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise UserError("A chat needs a name.")
        with self._connect() as db:
            db.execute("UPDATE sessions SET title = ? WHERE id = ?", (title, session_id))

    def delete(self, session_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- reading -----------------------------------------------------------
    def exists(self, session_id: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def list_sessions(self) -> list[SessionInfo]:
        """Most recently used first."""
        with self._connect() as db:
            rows = db.execute(
                """SELECT s.id, s.title, s.created_at, s.updated_at, COUNT(t.position)
                   FROM sessions s LEFT JOIN turns t ON t.session_id = s.id
                   GROUP BY s.id ORDER BY s.updated_at DESC, s.rowid DESC"""
            ).fetchall()
        return [SessionInfo(*row) for row in rows]

    def load(self, session_id: str) -> StoredSession:
        with self._connect() as db:
            row = db.execute(
                "SELECT title, created_at, updated_at, active_document, pages FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                raise UserError(f"There is no saved chat {session_id!r} (it may have been deleted).")
            turn_rows = db.execute(
                "SELECT data FROM turns WHERE session_id = ? ORDER BY position", (session_id,)
            ).fetchall()
            doc_rows = db.execute(
                "SELECT sha256, name, data FROM documents WHERE session_id = ? ORDER BY added_at", (session_id,)
            ).fetchall()
        title, created_at, updated_at, active_document, pages = row
        conversation = Conversation(
            id=session_id,
            title=title,
            created_at=created_at,
            updated_at=updated_at,
            turns=[Turn.from_dict(json.loads(data)) for (data,) in turn_rows],
        )
        documents = {sha: StoredDocument(sha, name, bytes(data)) for sha, name, data in doc_rows}
        return StoredSession(conversation, documents, active_document, json.loads(pages or "[1]"))
