"""Labels for a chat's documents that a person can tell apart (chatvlmllm.chat.document_labels)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chatvlmllm.chat.document_labels import document_labels
from chatvlmllm.documents.loading import load_document
from tests.helpers import image_bytes, pdf_of, text_image


def doc(lines: list[str], name: str):
    return load_document(image_bytes(text_image(lines)), name)


def at(seconds: float) -> str:
    return (datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)).isoformat()


def test_labels_say_name_pages_and_when_never_a_hash():
    photo, report = doc(["A"], "receipt.png"), load_document(pdf_of([text_image(["P1"]), text_image(["P2"])]), "r.pdf")
    labels = document_labels({photo.sha256: photo, report.sha256: report}, {photo.sha256: at(0), report.sha256: at(0)})
    assert labels[photo.sha256].startswith("receipt.png · 1 page · added ")
    assert labels[report.sha256].startswith("r.pdf · 2 pages · added ")
    assert all(photo.sha256[:6] not in label and report.sha256[:6] not in label for label in labels.values())


def test_two_uploads_with_the_same_name_and_pages_differ_by_when_they_were_added():
    first, second = doc(["FIRST"], "image.jpg"), doc(["SECOND"], "image.jpg")
    documents = {first.sha256: first, second.sha256: second}
    labels = document_labels(documents, {first.sha256: at(-120), second.sha256: at(0)})
    assert len(set(labels.values())) == 2 and all(
        label.startswith("image.jpg · 1 page · added ") for label in labels.values()
    )
    same_minute = document_labels(
        documents, {first.sha256: "2026-01-05T10:00:01+00:00", second.sha256: "2026-01-05T10:00:09+00:00"}
    )
    assert len(set(same_minute.values())) == 2 and all(
        label.count(":") == 2 for label in same_minute.values()
    )  # seconds
    unknown = document_labels(documents, {})
    assert sorted(unknown.values()) == [
        "image.jpg · 1 page · added earlier (1)",
        "image.jpg · 1 page · added earlier (2)",
    ]
