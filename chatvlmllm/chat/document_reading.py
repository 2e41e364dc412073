"""Whole documents with engines: the OCR step of the reading job, and a vision-language model's request over
the retrieved pages with its citations checked.

`chatvlmllm.documents.reading` reads text layers and checks them, but takes its OCR as an injected
`PageOcr`: this module provides it through the engines every front end shares (the engine cache, hence
the OCR cache): the offline engine (`ocr_auto`) by default, or a chosen OCR model.

- `EngineOcr(spec)`: `PageOcr` (a page → lines with boxes) and `LineSampler` (line crops → their text, for
  the text-layer check's agreement test: the crops are stacked into one strip, read in one pass).
- `reading_job(document, ...)`: a `ReadingJob` wired to an `EngineOcr`.
- `page_request(question, passages, documents)`: the message for a vision-language model: the retrieved
  pages' images (within the request pixel budget) and their passages, labelled with page numbers, asking
  it to cite pages; `answer_citations` checks what it cites (`documents.citations`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatvlmllm.chat.engine_cache import EngineCache, default_cache
from chatvlmllm.decisions import Backend
from chatvlmllm.documents.citations import Citation, check_citations, parse_citations
from chatvlmllm.documents.index import DocumentIndex, Passage
from chatvlmllm.documents.loading import Document
from chatvlmllm.documents.reading import OcrResult, ReadingJob, ReadProgress, job_of, reads_by_itself, start_reading
from chatvlmllm.documents.text_layer import TextLine
from chatvlmllm.engines import Engine, GenerationSettings, Message
from chatvlmllm.models.catalog import ModelSpec, get_model
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from chatvlmllm.models.tasks import OCR_PROMPT, offline_engine_for
from chatvlmllm.settings import settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image

log = logging.getLogger(__name__)

STRIP_GAP = 24  # white pixels between stacked line crops
REQUEST_PAGES = 4  # pages sent to a vision-language model, at most (fewer when the pixel budget says so)
CANCEL_POLL_S = 0.1


class EngineOcr:
    """OCR through an engine of the catalog (default: the offline engine for `language`)."""

    def __init__(self, spec: ModelSpec | None = None, language: str | None = None, cache: EngineCache | None = None):
        self.spec = spec or get_model(offline_engine_for(language))
        self.language = language
        self.cache = cache or default_cache()
        self._engine: Engine | None = None

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.cache.get(self.spec, plan_load(probe(), self.spec))
        return self._engine

    def _read(self, image: Image.Image, page: int, cancel: threading.Event | None = None) -> tuple[str, dict[str, Any]]:
        options: dict[str, Any] = {"reader_note": False} if self.spec.family_info().backend is Backend.CLASSIC else {}
        if self.language:
            options["lang"] = self.language
        stream = self.engine().stream(
            [Message("user", OCR_PROMPT, [image])], GenerationSettings(options=options, page_numbers=(page,))
        )
        done = threading.Event()
        if cancel is not None:
            threading.Thread(target=_cancel_when, args=(cancel, done, stream.cancel), daemon=True).start()
        try:
            text = stream.consume()
        finally:
            done.set()
        if stream.error is not None:
            raise stream.error
        return text, stream.extras

    def __call__(self, image: Image.Image, page: int, cancel: threading.Event) -> OcrResult:
        text, extras = self._read(image, page, cancel)
        lines = [
            TextLine(str(item["text"]), tuple(round(float(edge), 1) for edge in item["box"]))  # type: ignore[arg-type]
            for item in extras.get("lines") or []
            if item.get("text") and item.get("box") and len(item["box"]) == 4
        ]
        if not lines and text.strip():  # a model that answers without boxes: each line covers the page
            whole = (0.0, 0.0, float(image.width), float(image.height))
            lines = [TextLine(" ".join(line.split()), whole) for line in text.splitlines() if line.strip()]
        readers = {str(p.get("engine")) for p in extras.get("pages") or [] if p.get("engine")}
        reader = f"{self.spec.key}: {', '.join(sorted(readers))}" if readers else self.spec.key
        return OcrResult(lines, reader)

    def sample(self, crops: Sequence[Image.Image]) -> list[str]:
        """The text of each line crop, read in one pass over a strip of them (`LineSampler`)."""
        if not crops:
            return []
        strip, spans = _strip(crops)
        _, extras = self._read(strip, 1)
        found: list[list[str]] = [[] for _ in crops]
        for item in extras.get("lines") or []:
            box = item.get("box")
            if not box or len(box) != 4:
                continue
            middle = (float(box[1]) + float(box[3])) / 2
            for slot, (top, bottom) in enumerate(spans):
                if top <= middle <= bottom:
                    found[slot].append(str(item.get("text", "")))
                    break
        return [" ".join(parts) for parts in found]


def _cancel_when(cancel: threading.Event, done: threading.Event, stop: Callable[[], None]) -> None:
    while not done.is_set():
        if cancel.wait(CANCEL_POLL_S):
            stop()
            return


def _strip(crops: Sequence[Image.Image]) -> tuple[Image.Image, list[tuple[int, int]]]:
    """The crops stacked top to bottom on white, and each one's vertical span."""
    from PIL import Image as PILImage

    width = max(crop.width for crop in crops) + 2 * STRIP_GAP
    height = sum(crop.height for crop in crops) + STRIP_GAP * (len(crops) + 1)
    strip = PILImage.new("RGB", (width, height), "white")
    spans = []
    top = STRIP_GAP
    for crop in crops:
        strip.paste(crop.convert("RGB"), (STRIP_GAP, top))
        spans.append((top, top + crop.height))
        top += crop.height + STRIP_GAP
    return strip, spans


def reading_job(
    document: Document,
    index: DocumentIndex | None = None,
    ocr_model: ModelSpec | None = None,
    language: str | None = None,
    on_progress: Callable[[ReadProgress], None] | None = None,
) -> ReadingJob:
    """A reading job whose pages without a usable text layer are OCR'd by `ocr_model` (default: offline)."""
    ocr = EngineOcr(ocr_model, language)
    return ReadingJob(document, index or DocumentIndex(), ocr, ocr.sample, on_progress)


def keep_reading(document: Document, index: DocumentIndex, language: str | None = None) -> ReadingJob | None:
    """The app's background reading of a chat's document: started when it was never read, resumed when a crash
    or a restart stopped it, left alone after Cancel or a failure. Returns this process's job for it (running
    or finished), if any."""
    job = job_of(document.sha256, index)
    if reads_by_itself(index.status(document.sha256), job):
        return read_in_background(document, index, language)
    return job


def read_in_background(document: Document, index: DocumentIndex, language: str | None = None) -> ReadingJob:
    """Read (or go on reading) a document on a background thread, pages without a usable text layer by the
    offline engine for `language`; one job per document and database."""
    ocr = EngineOcr(language=language)
    return start_reading(document, index, ocr, ocr.sample)


# -- a vision-language model over the retrieved pages ---------------------------------------------
@dataclass(frozen=True)
class PageRequest:
    """What one question sends: the message, and which pages of which document it carries."""

    message: Message
    pages: list[tuple[str, int]]  # (document sha256, page), in the order of the images
    passages: list[Passage]

    def page_numbers(self) -> tuple[int, ...]:
        return tuple(page for _, page in self.pages)


def page_request(
    question: str, passages: Sequence[Passage], documents: Mapping[str, Document], max_pages: int = REQUEST_PAGES
) -> PageRequest:
    """The retrieved passages' pages (best first, within the request pixel budget) and their text, labelled
    with page numbers, with the instruction to cite pages as "[p. N]".

    When no passage matches the question's words ("Summarise", a question in other words than the
    document's), the opening pages of each document go instead: a model can still read them, and
    its citations are checked the same way."""
    wanted = [(passage.document, passage.page) for passage in passages] or _opening_pages(documents, max_pages)
    chosen = _within_budget(wanted, documents, max_pages)
    images = [documents[sha].page(page - 1) for sha, page in chosen]
    return PageRequest(Message("user", _prompt(question, chosen, passages, documents), images), chosen, list(passages))


def _opening_pages(documents: Mapping[str, Document], max_pages: int) -> list[tuple[str, int]]:
    return [
        (sha, page) for sha, document in documents.items() for page in range(1, min(document.page_count, max_pages) + 1)
    ]


def _within_budget(
    wanted: Sequence[tuple[str, int]], documents: Mapping[str, Document], max_pages: int
) -> list[tuple[str, int]]:
    """The pages in `wanted` order, without repeats, at most `max_pages`, within the request pixel budget
    (the first page always goes)."""
    budget = settings().max_request_pixels
    chosen: list[tuple[str, int]] = []
    used = 0
    for key in wanted:
        document = documents.get(key[0])
        if key in chosen or document is None:
            continue
        pixels = document.page_pixels(key[1] - 1)
        if chosen and used + pixels > budget:
            continue
        chosen.append(key)
        used += pixels
        if len(chosen) >= max_pages:
            break
    return chosen


def _prompt(
    question: str, chosen: Sequence[tuple[str, int]], passages: Sequence[Passage], documents: Mapping[str, Document]
) -> str:
    several = len({sha for sha, _ in chosen}) > 1
    parts = [
        "The images are pages of a document, in this order: "
        + ", ".join(f"{documents[sha].name + ' ' if several else ''}page {page}" for sha, page in chosen)
        + (". Text found on them:" if passages else ".")
    ]
    for sha, page in chosen:
        found = [p.text for p in passages if (p.document, p.page) == (sha, page)]
        if found:
            parts.append(f"[p. {page}] " + " … ".join(found))
    parts.append(
        "Answer from these pages only. After each fact, cite its page as [p. N], quoting the supporting words "
        'in double quotes before the marker, e.g. "the penalty is 0.1 % per day" [p. 27]. If the pages do not '
        "answer the question, say so."
    )
    parts.append(f"Question: {question}")
    return "\n\n".join(parts)


def answer_citations(answer: str, request: PageRequest, index: DocumentIndex) -> list[Citation]:
    """The citations in a model's answer, each checked against the pages the request sent."""
    by_page: dict[int, str] = {}
    for sha, page in request.pages:
        by_page.setdefault(page, sha)

    def lines(page: int) -> list[TextLine] | None:
        stored = index.page_text(by_page[page], page) if page in by_page else None
        return stored.lines if stored is not None else None

    checked = check_citations(parse_citations(answer), set(by_page), lines)
    return [Citation(c.page, c.text, c.boxes, c.status, by_page.get(c.page), None, c.similarity) for c in checked]
