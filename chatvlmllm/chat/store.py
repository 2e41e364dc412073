"""Local chat history: one SQLite file with sessions, their turns and their documents.

The file is `settings().database_path`, in the data directory: `$CHATVLMLLM_DATA_DIR`, else
`$XDG_DATA_HOME/chatvlmllm` (`~/.local/share/chatvlmllm`). Each completed turn is written
at once, and the uploaded document bytes are kept with the session, so a browser reload
or a server restart can continue any chat.

Every operation opens its own short connection: Streamlit runs each browser session on
its own thread, and SQLite connections must not cross threads.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

from chatvlmllm.chat.conversation import Conversation, Turn, UserError, now_iso
from chatvlmllm.database import applied, migrate
from chatvlmllm.i18n import _
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)


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
    added_at: str = ""  # ISO time it was added to the chat


@dataclass
class StoredSession:
    conversation: Conversation
    documents: dict[str, StoredDocument]  # by sha256
    active_document: str | None
    pages: list[int]


class StoreFault(StrEnum):
    READ_ONLY = "read_only"
    FULL = "full"
    LOCKED = "locked"
    DAMAGED = "damaged"  # not a SQLite file, or a malformed one
    UNAVAILABLE = "unavailable"


# SQLite's own codes for a file that is not a database or is malformed (primary codes: the low byte).
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def fault_of(exc: BaseException, folder: Path | None = None) -> StoreFault:
    """What went wrong: SQLite's error code for a damaged file, the disk itself when it can say (SQLite
    reports a full disk or a read-only mount as "disk I/O error" or "unable to open database file"), else
    the message."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _DAMAGE_CODES:
        return StoreFault.DAMAGED
    if folder is not None:
        try:
            disk = os.statvfs(folder)
        except OSError:
            disk = None
        if disk is not None and disk.f_flag & os.ST_RDONLY:
            return StoreFault.READ_ONLY
        if disk is not None and disk.f_bavail == 0:
            return StoreFault.FULL
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "permission" in text:
        return StoreFault.READ_ONLY
    if "full" in text or "no space" in text:
        return StoreFault.FULL
    if "locked" in text or "busy" in text:
        return StoreFault.LOCKED
    return StoreFault.UNAVAILABLE


class StoreError(UserError):
    """The chat history could not be read or written (locked database, full disk, ...)."""

    def __init__(self, message: str, fault: StoreFault = StoreFault.UNAVAILABLE):
        super().__init__(message)
        self.fault = fault


class ChatStore:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else settings().database_path
        # The last fault met (None once an operation succeeds again): the UI shows it as a warning.
        self.fault: StoreError | None = None
        # Said once to the user: a damaged file found at start was moved aside and a new one started.
        self.notice: str | None = None
        damage = self._damage()
        if damage is not None:
            self._start_again(damage)
            return
        try:
            self._prepare()
        except StoreError as exc:
            if exc.fault is StoreFault.DAMAGED:
                self._start_again(exc)
            else:
                self._cannot_open(exc)
        except OSError as exc:  # the data folder cannot be made
            self._cannot_open(exc)

    def _prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode = WAL")  # readers do not wait for a writer (kept in the file)
            migrate(db)  # the schema: chatvlmllm.database
            # Mirrors the migration count for sqlite3 users, and is the write that finds a read-only file now.
            db.execute(f"PRAGMA user_version = {len(applied(db))}")

    def _damage(self) -> sqlite3.Error | None:
        """Why the file is not a readable database, found read-only: a read-write connection to a damaged
        file deletes its write-ahead log on closing, and that log may hold the latest chats."""
        if not self.path.is_file():
            return None
        try:
            db = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error:
            return None  # not a question of damage: the read-write open says what it is
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return None
        except sqlite3.Error as exc:
            return exc if fault_of(exc) is StoreFault.DAMAGED else None
        finally:
            db.close()

    def _cannot_open(self, exc: BaseException) -> None:
        """A read-only or full data folder keeps the history readable (new chats are not saved); else an error."""
        cause = _cause(exc)
        if self.path.is_file() and self._readable():
            self.fault = StoreError(
                f"The chat history at {self.path} is read-only now ({cause}); new messages are not saved.",
                fault_of(exc, self.path.parent),
            )
            return
        raise StoreError(
            f"The chat history at {self.path} cannot be opened ({cause}). "
            "Set CHATVLMLLM_DATA_DIR to a writable folder.",
            fault_of(exc, self.path.parent),
        ) from None

    def _start_again(self, exc: BaseException) -> None:
        """Move a damaged file aside (never deleted: older chats may be recovered from it) and start a new one."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(f"{aside}{suffix}")
            self._prepare()
        except (OSError, StoreError) as again:
            raise StoreError(
                f"The chat history file {self.path} is damaged ({_cause(exc)}) and could not be moved aside "
                f"({_cause(again)}). Move it out of {self.path.parent} and start the app again.",
                StoreFault.DAMAGED,
            ) from None
        self.notice = (
            f"The chat history file {self.path} was damaged ({_cause(exc)}), so a new, empty one was started. "
            f"The damaged file is kept as {aside}: nothing was deleted, and `sqlite3 {aside} .recover` may "
            "get older chats back from it."
        )
        log.warning("%s", self.notice)

    def _readable(self) -> bool:
        try:
            with self._reading() as db:
                db.execute("SELECT COUNT(*) FROM sessions").fetchone()
            return True
        except StoreError:
            return False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; StoreError (with its fault) when the disk refuses."""
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise self._failed(f"The chat history at {self.path} cannot be opened: {exc}.", exc) from exc
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:  # one transaction
                yield db
        except sqlite3.Error as exc:  # locked past the timeout, disk full, read-only folder, ...
            raise self._failed(f"The chat history at {self.path} could not be updated: {exc}.", exc) from exc
        finally:
            db.close()
        self.fault = None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading that still works when the folder or the disk has become read-only."""
        db = self._open_for_reading()
        try:
            yield db
        except sqlite3.Error as exc:
            raise self._failed(f"The chat history at {self.path} cannot be read: {exc}.", exc) from exc
        finally:
            db.close()

    def _open_for_reading(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise self._failed(f"The chat history at {self.path} cannot be opened: {exc}.", exc) from exc
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # WAL readers write the -shm file
            return db
        except sqlite3.Error as exc:
            db.close()
            if fault_of(exc, self.path.parent) == StoreFault.LOCKED:
                raise self._failed(f"The chat history at {self.path} is busy: {exc}.", exc) from exc
        # A read-only folder or disk: read the file as it is on disk.
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro&immutable=1"
        try:
            return sqlite3.connect(uri, uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise self._failed(f"The chat history at {self.path} cannot be read: {exc}.", exc) from exc

    def _failed(self, message: str, exc: BaseException) -> StoreError:
        fault = fault_of(exc, self.path.parent)
        if fault is StoreFault.DAMAGED:  # not a question of permissions: say what happened and what to do
            message = (
                f"The chat history file {self.path} is damaged ({exc}). Restart the app: it keeps the damaged "
                "file as a copy and starts a new one."
            )
        error = StoreError(message, fault)
        self.fault = error
        log.warning("%s", message)
        return error

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

    def append_turn(self, conversation: Conversation, turn: Turn) -> int:
        """Save one turn after the ones already stored; returns its position.

        The position comes from the database, not from memory: two browser tabs on the
        same chat then interleave their turns instead of overwriting each other's.
        """
        with self._connect() as db:
            self._upsert_session(db, conversation)
            (position,) = db.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM turns WHERE session_id = ?", (conversation.id,)
            ).fetchone()
            db.execute(
                "INSERT INTO turns (session_id, position, role, data) VALUES (?, ?, ?, ?)",
                (conversation.id, position, turn.role, _turn_json(turn)),
            )
        return int(position)

    def replace_turn(self, conversation: Conversation, position: int, turn: Turn) -> None:
        """Overwrite the turn saved at `position` (a partial answer growing, then finished)."""
        with self._connect() as db:
            self._upsert_session(db, conversation)
            db.execute(
                "UPDATE turns SET role = ?, data = ? WHERE session_id = ? AND position = ?",
                (turn.role, _turn_json(turn), conversation.id, position),
            )

    def save_document(self, session_id: str, sha256: str, name: str, data: bytes, added_at: str | None = None) -> None:
        """Keep a document's bytes with the chat; `added_at` (ISO) when it was added earlier (a resumed chat)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO documents (session_id, sha256, name, data, added_at) VALUES (?, ?, ?, ?, ?)",
                (session_id, sha256, name, sqlite3.Binary(data), added_at or now_iso()),
            )

    def save_conversation(self, conversation: Conversation) -> None:
        """Write a whole conversation (an imported transcript), replacing any turns stored under its id."""
        with self._connect() as db:
            self._upsert_session(db, conversation)
            db.execute("DELETE FROM turns WHERE session_id = ?", (conversation.id,))
            db.executemany(
                "INSERT INTO turns (session_id, position, role, data) VALUES (?, ?, ?, ?)",
                [(conversation.id, i, t.role, _turn_json(t)) for i, t in enumerate(conversation.turns)],
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
            raise UserError(_("A chat needs a name."))
        with self._connect() as db:
            db.execute("UPDATE sessions SET title = ? WHERE id = ?", (title, session_id))

    def delete(self, session_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- reading -----------------------------------------------------------
    def exists(self, session_id: str, quiet: bool = True) -> bool:
        """Whether the chat is stored. When the history cannot be read: False with `fault` set, or, when
        not `quiet`, the StoreError (a caller that must not say "it was deleted" when it cannot know)."""
        try:
            with self._reading() as db:
                return db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None
        except StoreError:
            if not quiet:
                raise
            return False

    def list_sessions(self) -> list[SessionInfo]:
        """Most recently used first; empty (with `fault` set) when the history cannot be read."""
        try:
            return self._list_sessions()
        except StoreError:
            return []

    def _list_sessions(self) -> list[SessionInfo]:
        with self._reading() as db:
            rows = db.execute(
                """SELECT s.id, s.title, s.created_at, s.updated_at, COUNT(t.position)
                   FROM sessions s LEFT JOIN turns t ON t.session_id = s.id
                   GROUP BY s.id ORDER BY s.updated_at DESC, s.rowid DESC"""
            ).fetchall()
        return [SessionInfo(*row) for row in rows]

    def load(self, session_id: str) -> StoredSession:
        with self._reading() as db:
            row = db.execute(
                "SELECT title, created_at, updated_at, active_document, pages FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                raise UserError(
                    _("There is no saved chat {chat} (it may have been deleted).").format(chat=repr(session_id))
                )
            turn_rows = db.execute(
                "SELECT data FROM turns WHERE session_id = ? ORDER BY position", (session_id,)
            ).fetchall()
            doc_rows = db.execute(
                "SELECT sha256, name, data, added_at FROM documents WHERE session_id = ? ORDER BY added_at",
                (session_id,),
            ).fetchall()
        title, created_at, updated_at, active_document, pages = row
        conversation = Conversation(
            id=session_id,
            title=title,
            created_at=created_at,
            updated_at=updated_at,
            turns=[_stored_turn(data) for (data,) in turn_rows],
        )
        documents = {sha: StoredDocument(sha, name, bytes(data), added) for sha, name, data, added in doc_rows}
        return StoredSession(conversation, documents, active_document, _stored_pages(pages))


def _cause(exc: BaseException) -> str:
    """The underlying reason in a few words ("file is not a database"), without a message's own ending."""
    root = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ is not None else exc
    return str(root).strip().rstrip(".")


def _turn_json(turn: Turn) -> str:
    return json.dumps(turn.to_dict(), ensure_ascii=False, default=str)


def _stored_turn(data: str) -> Turn:
    """A stored turn through the transcript schema; one that no longer fits becomes a visible placeholder."""
    try:
        return Turn.from_dict(json.loads(data))
    except (UserError, ValueError, RecursionError) as exc:
        log.warning("unreadable stored turn: %s", exc)
        return Turn.unreadable(str(exc)[:200])


def _stored_pages(pages: str | None) -> list[int]:
    try:
        value = json.loads(pages or "[1]")
    except ValueError:
        return [1]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in value)
    ):
        return value
    return [1]
