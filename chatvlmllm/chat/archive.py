"""A chat and its documents in one .zip, and back: the JSON transcript alone has no pages.

The archive holds `transcript.json` (the JSON export, unchanged), `documents.json` (the file name of
each document, by sha256) and `documents/<sha256>` (each document's bytes as uploaded). No name in the
archive comes from the user: file names live in `documents.json`, so no path in it can point anywhere.

Reading an archive from elsewhere is strict, like the transcript import: its size, the number of
entries, each entry's name (only the three kinds above), declared and real sizes (every read is
bounded, whatever the headers say, so a zip bomb stops at the limit), encryption, each document's
sha256 against its bytes, and the documents themselves (`documents.loading.load_document`). Anything
else is a `TranscriptError` with one line that says what.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from chatvlmllm.chat.conversation import (
    MAX_SHORT_CHARS,
    MAX_TRANSCRIPT_BYTES,
    Conversation,
    TranscriptError,
    schema_error,
)
from chatvlmllm.documents.loading import Document, load_document, safe_name
from chatvlmllm.errors import DocumentError
from chatvlmllm.i18n import _, ngettext
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

TRANSCRIPT_ENTRY = "transcript.json"
MANIFEST_ENTRY = "documents.json"
DOCUMENT_ENTRY = re.compile(r"^documents/([0-9a-f]{64})$")
ZIP_MAGIC = b"PK\x03\x04"
MAX_ARCHIVE_MB = 200  # the whole archive, and everything in it once unpacked
MAX_DOCUMENTS = 50


class _ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SHORT_CHARS)]
    added_at: Annotated[str, StringConstraints(max_length=64)] | None = None  # when it was added to the chat


@dataclass(frozen=True)
class ArchivedDocument:
    document: Document
    added_at: str | None  # ISO time it was added to the chat; None when the archive does not say (or not as a time)


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    documents: Annotated[list[_ManifestEntry], Field(max_length=MAX_DOCUMENTS)]


def is_archive(data: bytes) -> bool:
    return data[:4] == ZIP_MAGIC


def to_archive(
    conversation: Conversation, documents: Mapping[str, Document], added: Mapping[str, str] | None = None
) -> bytes:
    """The chat as a .zip: its JSON transcript and the bytes of every document it holds (with when each
    was added, so the document picker reads the same after a resume)."""
    added = added or {}
    manifest = {
        "documents": [
            {"sha256": sha, "name": doc.name, **({"added_at": added[sha]} if added.get(sha) else {})}
            for sha, doc in documents.items()
        ]
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(TRANSCRIPT_ENTRY, conversation.to_json())
        archive.writestr(MANIFEST_ENTRY, json.dumps(manifest, indent=2, ensure_ascii=False))
        for sha, doc in documents.items():
            archive.writestr(f"documents/{sha}", doc.data)
    return buffer.getvalue()


def read_chat(data: bytes | str) -> tuple[Conversation, list[ArchivedDocument]]:
    """A downloaded chat: a JSON transcript (no documents) or a .zip archive (with them)."""
    if isinstance(data, bytes) and is_archive(data):
        return read_archive(data)
    return Conversation.from_json(data), []


def read_archive(data: bytes) -> tuple[Conversation, list[ArchivedDocument]]:
    """The conversation and its documents from an archive, checked as the module doc says."""
    limit = MAX_ARCHIVE_MB * 1_000_000
    if len(data) > limit:
        raise TranscriptError(
            _("The archive is {size} MB; the limit is {limit} MB.").format(
                size=format(len(data) / 1e6, ".0f"), limit=MAX_ARCHIVE_MB
            )
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = _read_entries(archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise TranscriptError(_("The archive cannot be read: {error}.").format(error=exc)) from None
    if TRANSCRIPT_ENTRY not in entries:
        raise TranscriptError(
            _("The archive has no {entry}: it is not a chatvlmllm chat archive.").format(entry=TRANSCRIPT_ENTRY)
        )
    conversation = Conversation.from_json(entries[TRANSCRIPT_ENTRY])
    return conversation, _documents(entries)


def _read_entries(archive: zipfile.ZipFile) -> dict[str, bytes]:
    infos = archive.infolist()
    if len(infos) > MAX_DOCUMENTS + 2:
        raise TranscriptError(
            _("The archive has {count} entries; a chat archive has at most {limit}.").format(
                count=len(infos), limit=MAX_DOCUMENTS + 2
            )
        )
    entries: dict[str, bytes] = {}
    budget = MAX_ARCHIVE_MB * 1_000_000
    for info in infos:
        name = info.filename
        shown = safe_name(name)
        if name not in (TRANSCRIPT_ENTRY, MANIFEST_ENTRY) and not DOCUMENT_ENTRY.match(name):
            raise TranscriptError(
                _("The archive holds {name}, which is not part of a chat archive.").format(name=repr(shown))
            )
        if name in entries:
            raise TranscriptError(_("The archive holds {name} twice.").format(name=repr(shown)))
        if info.flag_bits & 0x1:
            raise TranscriptError(_("{name} in the archive is encrypted.").format(name=shown))
        entry_limit = MAX_TRANSCRIPT_BYTES if name == TRANSCRIPT_ENTRY else _document_limit()
        if info.file_size > min(entry_limit, budget):
            raise TranscriptError(
                _("{name} in the archive unpacks to {size} MB: too large.").format(
                    name=shown, size=format(info.file_size / 1e6, ".0f")
                )
            )
        entries[name] = _bounded_read(archive, info, min(entry_limit, budget), shown)
        budget -= len(entries[name])
    return entries


def _bounded_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, shown: str) -> bytes:
    """The entry's bytes, never more than `limit` whatever its header says (a header can lie)."""
    with archive.open(info) as entry:
        data = entry.read(limit + 1)
    if len(data) > limit:
        raise TranscriptError(_("{name} in the archive is larger than its header says: too large.").format(name=shown))
    return data


def _document_limit() -> int:
    return int(settings().max_upload_mb * 1_000_000)


def _documents(entries: Mapping[str, bytes]) -> list[ArchivedDocument]:
    stored = {match.group(1): data for name, data in entries.items() if (match := DOCUMENT_ENTRY.match(name))}
    try:
        manifest = _Manifest.model_validate_json(entries.get(MANIFEST_ENTRY, b'{"documents": []}'))
    except ValidationError as exc:
        raise schema_error(exc, f"The archive's {MANIFEST_ENTRY} does not match the format") from None
    names = {entry.sha256: entry.name for entry in manifest.documents}
    added = {entry.sha256: _iso_time(entry.added_at) for entry in manifest.documents}
    if set(names) != set(stored):
        raise TranscriptError(
            _("The archive's {entry} does not list the documents it holds.").format(entry=MANIFEST_ENTRY)
        )
    documents = []
    for sha, data in stored.items():
        if hashlib.sha256(data).hexdigest() != sha:
            raise TranscriptError(
                _("{name} in the archive is damaged (its checksum differs).").format(name=safe_name(names[sha]))
            )
        try:
            documents.append(ArchivedDocument(load_document(data, names[sha]), added[sha]))
        except DocumentError as exc:
            raise TranscriptError(_("A document in the archive cannot be used: {error}").format(error=exc)) from None
    return documents


def _iso_time(text: str | None) -> str | None:
    """An aware ISO time no later than now, else None (a time from a file is not trusted as is)."""
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    if moment.tzinfo is None or moment > datetime.now(UTC):
        return None
    return moment.isoformat(timespec="milliseconds")


def missing_documents(conversation: Conversation, present: Collection[str]) -> list[str]:
    """Names of the documents the chat's questions were about that are not here (by sha256), in order."""
    missing: dict[str, str] = {}
    for turn in conversation.turns:
        if turn.document and turn.document_sha256 not in present:
            missing.setdefault(turn.document_sha256 or turn.document, turn.document)
    return list(dict.fromkeys(missing.values()))


def missing_note(names: Collection[str]) -> str:
    """What to tell the user about documents a resumed chat refers to but does not have ("" if none)."""
    if not names:
        return ""
    listed = ", ".join(safe_name(name) for name in names)
    return ngettext(
        "{names} was not part of the export: upload it again to see the pages and ask more. "
        "(The .zip export keeps the documents with the chat.)",
        "{names} were not part of the export: upload them again to see the pages and ask more. "
        "(The .zip export keeps the documents with the chat.)",
        len(names),
    ).format(names=listed)
