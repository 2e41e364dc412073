"""Offline OCR results per document page and engine settings: in memory, and in the chat store's SQLite file.

A follow-up question about the same page reads the result back instead of running the OCR
again (seconds per page → milliseconds), and so does a reloaded chat or a restarted process: the
results live in their own table (`ocr_pages`, a migration of `chatvlmllm.database`) of the database file.

The key is a hash of the page's pixels (what the engine actually reads, after any downscale)
plus the engine settings that change the result (engine, language, tuning version), so a
different page, language or engine is never served someone else's text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatvlmllm.database import migrate
from chatvlmllm.settings import settings

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MEMORY_PAGES = 128


def page_key(image: Image.Image, settings: Mapping[str, Any]) -> str:
    """sha256 of the page's pixels, size and mode, and of the settings (as sorted JSON)."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    digest.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    return digest.hexdigest()


class OcrCache:
    """A small in-memory LRU in front of a SQLite table; a store that cannot be written only logs."""

    def __init__(self, path: Path | str | None, memory_pages: int = MEMORY_PAGES):
        self.path = Path(path) if path is not None else None
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._memory_pages = memory_pages
        self._lock = threading.Lock()
        self._table_ready = False
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.hits += 1
                return self._memory[key]
        stored = self._read(key)
        with self._lock:
            if stored is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, stored)
        return stored

    def put(self, key: str, engine: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._remember(key, value)
        self._write(key, engine, value)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()

    def _remember(self, key: str, value: dict[str, Any]) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_pages:
            self._memory.popitem(last=False)

    # -- SQLite: one short connection per call (Streamlit sessions run on their own threads) --

    def _connect(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
            if not self._table_ready:
                migrate(db)  # the ocr_pages table is a numbered migration (chatvlmllm.database)
                self._table_ready = True
            return db
        except (OSError, sqlite3.Error) as exc:
            log.warning("OCR cache at %s is not usable (%s); results stay in memory only", self.path, exc)
            return None

    def _read(self, key: str) -> dict[str, Any] | None:
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute("SELECT data FROM ocr_pages WHERE key = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else None
        except (sqlite3.Error, json.JSONDecodeError) as exc:
            log.warning("OCR cache read failed (%s); reading the page again", exc)
            return None
        finally:
            db.close()

    def _write(self, key: str, engine: str, value: dict[str, Any]) -> None:
        db = self._connect()
        if db is None:
            return
        try:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO ocr_pages (key, engine, data, created_at) VALUES (?, ?, ?, ?)",
                    (
                        key,
                        engine,
                        json.dumps(value, ensure_ascii=False),
                        datetime.now(UTC).isoformat(timespec="seconds"),
                    ),
                )
        except sqlite3.Error as exc:
            log.warning("OCR cache write failed (%s); the result is kept in memory only", exc)
        finally:
            db.close()


_caches: dict[Path, OcrCache] = {}
_caches_lock = threading.Lock()


def default_ocr_cache(path: Path | None = None) -> OcrCache:
    """The process's cache for the database at `path` (default: `settings().database_path`, the chats' file)."""
    path = (path or settings().database_path).resolve()
    with _caches_lock:
        if path not in _caches:
            _caches[path] = OcrCache(path)
        return _caches[path]
