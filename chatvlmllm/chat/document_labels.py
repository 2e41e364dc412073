"""Names for a chat's documents that a person can tell apart: "receipt.png · 1 page · added 15:20".

Two uploads may share a name (two photos called image.jpg) and a page count; the time each was added
tells them apart, to the second when the minute is the same, and a number after that. No hash: a
person cannot tell "1e4992" from "7ac03b".
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime

from chatvlmllm.documents.loading import Document

log = logging.getLogger(__name__)


def document_labels(documents: Mapping[str, Document], added: Mapping[str, str]) -> dict[str, str]:
    """sha256 → label, for every document; each label differs from the others."""

    def base(sha: str) -> str:
        doc = documents[sha]
        return f"{doc.name} · {doc.page_count} page{'s' if doc.page_count != 1 else ''}"

    labels = {sha: f"{base(sha)} · added {_when(added.get(sha), seconds=False)}" for sha in documents}
    labels = _where_repeated(labels, lambda sha: f"{base(sha)} · added {_when(added.get(sha), seconds=True)}")
    repeated = Counter(labels.values())
    seen: Counter[str] = Counter()
    for sha, label in labels.items():
        if repeated[label] > 1:
            seen[label] += 1
            labels[sha] = f"{label} ({seen[label]})"
    return labels


def _where_repeated(labels: dict[str, str], better: Callable[[str], str]) -> dict[str, str]:
    counts = Counter(labels.values())
    return {sha: better(sha) if counts[label] > 1 else label for sha, label in labels.items()}


def _when(iso: str | None, seconds: bool) -> str:
    """ "15:20" today, "3 Dec 15:20" before; "earlier" when the time is unknown (a document stored long ago)."""
    try:
        moment = datetime.fromisoformat(iso or "").astimezone()
    except ValueError:
        return "earlier"
    clock = f"{moment:%H:%M:%S}" if seconds else f"{moment:%H:%M}"
    if moment.date() == datetime.now().astimezone().date():
        return clock
    return f"{moment.day} {moment:%b} {clock}"
