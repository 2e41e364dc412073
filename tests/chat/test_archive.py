"""A chat with its documents as a .zip, and back (chatvlmllm.chat.archive): round trips and hostile archives."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import warnings
import zipfile

import pytest

from chatvlmllm.chat import archive
from chatvlmllm.chat.archive import missing_documents, missing_note, read_archive, read_chat, to_archive
from chatvlmllm.chat.conversation import Conversation, TranscriptError, Turn
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.documents.loading import load_document
from tests.helpers import image_bytes, text_image


def document(lines: list[str], name: str):
    return load_document(image_bytes(text_image(lines)), name)


def chat_about(*docs) -> Conversation:
    conversation = Conversation(title="Receipts")
    for doc in docs:
        conversation.add(Turn("user", "Extract all text", document=doc.name, document_sha256=doc.sha256, pages=[1]))
        conversation.add(Turn("assistant", f"text of {doc.name}", model="rapidocr"))
    return conversation


def test_an_archive_carries_the_chat_and_its_documents_back():
    first, second = document(["SHOP 42", "TOTAL 12.50"], "receipt.png"), document(["CAFE"], "cafe.png")
    conversation = chat_about(first, second)
    added = {first.sha256: "2026-01-05T10:00:01.000+00:00", second.sha256: "2026-01-05T10:07:00.000+00:00"}
    restored, archived = read_archive(to_archive(conversation, {d.sha256: d for d in (first, second)}, added))
    assert restored.to_dict()["turns"] == conversation.to_dict()["turns"] and restored.title == "Receipts"
    assert {(a.document.name, a.document.data) for a in archived} == {
        (first.name, first.data),
        (second.name, second.data),
    }
    assert {a.document.sha256: a.added_at for a in archived} == added  # the picker reads the same after a resume
    names = zipfile.ZipFile(io.BytesIO(to_archive(conversation, {first.sha256: first}))).namelist()
    assert names == ["transcript.json", "documents.json", f"documents/{first.sha256}"]  # no user name as a path


def test_a_plain_json_transcript_still_reads_without_documents():
    conversation = chat_about(document(["A"], "a.png"))
    restored, documents = read_chat(conversation.to_json().encode())
    assert restored.id == conversation.id and documents == []


def test_a_resumed_archive_is_a_saved_chat_with_its_pages(tmp_path):
    first, second = document(["FIRST"], "first.png"), document(["SECOND"], "second.png")
    conversation = chat_about(first, second)
    store = ChatStore(tmp_path / "chats.sqlite3")
    added = {first.sha256: "2026-01-05T10:00:01.000+00:00", second.sha256: "2099-01-01T00:00:00+00:00"}
    data = to_archive(conversation, {d.sha256: d for d in (first, second)}, added)
    session = ChatSession.from_transcript(store, data)
    assert session.saved and set(session.documents) == {first.sha256, second.sha256}
    assert session.active_document == second.sha256  # the document of the last question
    assert session.page_image(first.sha256, 1) is not None
    stored = store.load(session.id)
    assert set(stored.documents) == {first.sha256, second.sha256} and stored.active_document == second.sha256
    assert stored.documents[first.sha256].added_at == added[first.sha256]  # kept as it was
    assert stored.documents[second.sha256].added_at < "2099"  # a time in the future is not trusted: now instead
    assert missing_documents(session.conversation, session.documents) == []


def test_what_a_json_transcript_lacks_is_named():
    doc = document(["X"], "receipt.png")
    conversation = chat_about(doc, document(["Y"], "invoice.png"))
    assert missing_documents(conversation, {}) == ["receipt.png", "invoice.png"]
    assert missing_documents(conversation, {doc.sha256}) == ["invoice.png"]
    assert missing_note(["receipt.png"]).startswith("receipt.png was not part of the export: upload it again")
    assert "were not part" in missing_note(["a.png", "b.png"]) and missing_note([]) == ""


# -- hostile archives ---------------------------------------------------------------------


def build(entries: dict[str, bytes], manifest: list[dict] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("transcript.json", Conversation(title="x").to_json())
        if manifest is not None:
            out.writestr("documents.json", json.dumps({"documents": manifest}))
        for name, data in entries.items():
            out.writestr(name, data)
    return buffer.getvalue()


PNG = image_bytes(text_image(["PAGE"]))
SHA = hashlib.sha256(PNG).hexdigest()
TEXT_SHA = hashlib.sha256(b"hello").hexdigest()


def _duplicate() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate this archive is made of
        out.writestr("transcript.json", Conversation().to_json())
        out.writestr("transcript.json", Conversation().to_json())
    return buffer.getvalue()


def _encrypted() -> bytes:
    """The "encrypted" flag set in the local and central headers (zipfile itself never writes it)."""
    data = bytearray(build({}))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature) + offset
        data[at] |= 0x1
    return bytes(data)


def _lying_header() -> bytes:
    """A document whose central directory claims 10 bytes: the real 2 MB must not get through."""
    data = bytearray(build({f"documents/{SHA}": PNG + b"\0" * 2_000_000}, [{"sha256": SHA, "name": "p.png"}]))
    central = data.rfind(b"PK\x01\x02")  # the last entry's central directory record
    data[central + 24 : central + 28] = struct.pack("<I", 10)  # its uncompressed size
    return bytes(data)


HOSTILE = {
    "not a zip": (b"PK\x03\x04 and then nothing", "cannot be read"),
    "a path out": (build({"../../etc/evil": b"x"}), "not part of a chat archive"),
    "an absolute path": (build({"/etc/passwd": b"x"}), "not part of a chat archive"),
    "a nested path": (build({f"documents/../{SHA}": PNG}), "not part of a chat archive"),
    "an entry twice": (_duplicate(), "twice"),
    "encrypted": (_encrypted(), "encrypted"),
    "no transcript": (b"", "no transcript.json"),
    "unlisted document": (build({f"documents/{SHA}": PNG}, []), "does not list the documents"),
    "bad manifest": (build({f"documents/{SHA}": PNG}, [{"sha256": SHA}]), "documents.json does not match"),
    "checksum": (build({f"documents/{'0' * 64}": PNG}, [{"sha256": "0" * 64, "name": "p.png"}]), "damaged"),
    "not a document": (
        build({f"documents/{TEXT_SHA}": b"hello"}, [{"sha256": TEXT_SHA, "name": "notes.txt"}]),
        "cannot be used",
    ),
    "too many entries": (build({f"documents/{i:064x}": b"x" for i in range(archive.MAX_DOCUMENTS + 2)}), "entries"),
    "a lying header": (_lying_header(), "CRC|larger than its header|damaged"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archives_are_refused_with_one_clear_line(case):
    data, expected = HOSTILE[case]
    if case == "no transcript":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as out:
            out.writestr("documents.json", '{"documents": []}')
        data = buffer.getvalue()
    with pytest.raises(TranscriptError, match=expected) as error:
        read_chat(data)
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)


def test_a_zip_bomb_stops_at_the_document_limit(monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_MAX_UPLOAD_MB", "1")
    bomb = b"\0" * 30_000_000  # 30 MB of zeros deflate to about 30 KB
    sha = hashlib.sha256(bomb).hexdigest()
    data = build({f"documents/{sha}": bomb}, [{"sha256": sha, "name": "bomb.bmp"}])
    assert len(data) < 100_000
    with pytest.raises(TranscriptError, match="unpacks to 30 MB: too large"):
        read_chat(data)


def test_an_archive_over_the_size_limit_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_MB", 0)
    with pytest.raises(TranscriptError, match="the limit is 0 MB"):
        read_chat(build({}))
