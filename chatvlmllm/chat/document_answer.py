"""A question over every document of a chat, with citations: which way it is answered, what is sent, and the
citations its answer carries.

`document_route(question, spec)` decides (`DocumentRoute`):

- a question, and a model that does not chat (the offline engines, the OCR models): the extractive answer, the
  index's best passages, each with its page (`documents.citations.extractive_answer`). No engine runs: the
  pages were read once, in the background. `ExtractiveRoute` gives it to `Answer` as a route of one stream.
- a question and a vision-language model: the retrieved pages' images and passages, labelled with their page
  numbers, and the instruction to cite pages (`document_reading.page_request`); the model's citations are checked
  (`document_reading.answer_citations`). Should no vision-language model answer, the extractive answer is given
  instead, saying so.
- "Summarise" and a vision-language model: the opening pages, the same way.
- a page task (extract the text, a table, key fields) stays with the page(s) in view: None.

`DocumentAnswer.complete(turn, routed)` gives the finished assistant turn its citations, its method and how much
of each document had been read (an answer given while the reading runs says so).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from chatvlmllm.chat.conversation import Turn
from chatvlmllm.chat.document_reading import PageRequest, answer_citations, page_request
from chatvlmllm.chat.router import RoutedAnswer
from chatvlmllm.decisions import AttemptOutcome, StopReason, Task
from chatvlmllm.documents.citations import Citation, ExtractiveAnswer, extractive_answer
from chatvlmllm.documents.index import DocumentIndex, ReadStatus
from chatvlmllm.documents.loading import Document
from chatvlmllm.engines import AnswerMetrics, AnswerStream, GenerationStats, Message, Progress
from chatvlmllm.i18n import _, ngettext
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.planner import plan_load
from chatvlmllm.models.tasks import classify

log = logging.getLogger(__name__)

RETRIEVED_PASSAGES = 12  # passages retrieved for a model's request (their pages go, best first, within budget)
METHOD = "method"  # extras key: AnswerMethod
COVERAGE = "coverage"  # extras key: how much of each document was read when the question was answered
PAGES_SENT = "pages_sent"  # extras key: [{"document": name, "page": n}] sent to the model
NO_MODEL_NOTE = "note"  # extras key: why the extractive answer stands in for a model's


class DocumentRoute(StrEnum):
    EXTRACTIVE = "extractive"  # the best passages, each with its page; no model
    RETRIEVED_PAGES = "retrieved pages"  # a vision-language model reads the pages the question's passages are on
    OPENING_PAGES = "opening pages"  # a vision-language model reads the first pages (a summary)


class AnswerMethod(StrEnum):
    """How an answer over whole documents was made (stored in the turn's extras)."""

    EXTRACTIVE = "extractive"
    MODEL = "model"


def understands_questions(spec: ModelSpec) -> bool:
    """A chat model: it can answer a question from pages; the others (offline engines, OCR models) only read."""
    return "chat" in spec.caps


def document_route(question: str, spec: ModelSpec) -> DocumentRoute | None:
    """How a question over whole documents is answered with `spec`; None for a page task (the pages in view)."""
    task = classify(question)
    if task is Task.QUESTION:
        return DocumentRoute.RETRIEVED_PAGES if understands_questions(spec) else DocumentRoute.EXTRACTIVE
    if task is Task.SUMMARY and understands_questions(spec):
        return DocumentRoute.OPENING_PAGES
    return None


@dataclass
class DocumentAnswer:
    """One question over whole documents (`names`: sha256 → file name): its request, then its answer's citations."""

    question: str
    route: DocumentRoute
    index: DocumentIndex
    names: dict[str, str]
    request: PageRequest | None = None
    found: ExtractiveAnswer | None = None  # the extractive answer, once made
    coverage: list[ReadStatus] = field(default_factory=list)  # as of the question

    def __post_init__(self) -> None:
        self.coverage = [status for sha in self.names if (status := self.index.status(sha)) is not None]

    @property
    def documents(self) -> list[str]:
        return list(self.names)

    def model_message(self, documents: Mapping[str, Document]) -> Message:
        """The message a vision-language model gets: the retrieved (or opening) pages and their passages."""
        wanted = self.route is DocumentRoute.RETRIEVED_PAGES
        passages = self.index.search(self.question, self.documents, RETRIEVED_PASSAGES) if wanted else []
        self.request = page_request(self.question, passages, documents)
        return self.request.message

    def extract(self) -> ExtractiveAnswer:
        self.found = extractive_answer(self.question, self.index, self.documents)
        return self.found

    def complete(self, turn: Turn, routed: RoutedAnswer) -> None:
        """The assistant turn's citations, method and coverage (called on the final turn and on a stopped one)."""
        turn.extras[COVERAGE] = [coverage_record(status) for status in self.coverage]
        if self.route is DocumentRoute.EXTRACTIVE:
            turn.citations = self.citations(turn.text)
            turn.extras[METHOD] = AnswerMethod.EXTRACTIVE.value
        elif turn.error and routed.model is None and turn.stopped_by != StopReason.CANCELLED:
            self._instead_of_a_model(turn)
        elif self.request is not None:
            turn.citations = self.citations(turn.text)
            turn.extras[METHOD] = AnswerMethod.MODEL.value
            turn.extras[PAGES_SENT] = [
                {"document": self.names.get(sha), "page": page} for sha, page in self.request.pages
            ]

    def _instead_of_a_model(self, turn: Turn) -> None:
        """No vision-language model could answer: the passages that match, saying why (the attempts stay)."""
        found = self.extract()
        turn.extras[NO_MODEL_NOTE] = _(
            "No vision-language model could answer ({why}); the passages that match the question are shown instead."
        ).format(why=turn.error)
        turn.text, turn.error = found.text, None
        turn.citations = self._named(found.citations)
        turn.extras[METHOD] = AnswerMethod.EXTRACTIVE.value

    def citations(self, answer: str) -> list[Citation]:
        """The citations of `answer`: the extractive answer's own, or a model's checked against the pages it was
        sent (none before the request is made)."""
        if self.route is DocumentRoute.EXTRACTIVE:
            return self._named(self.found.citations if self.found else [])
        return self._named(answer_citations(answer, self.request, self.index)) if self.request is not None else []

    def _named(self, citations: list[Citation]) -> list[Citation]:
        """Each citation with its document's file name (the checker knows only its sha256)."""
        return [replace(c, document_name=self.names.get(c.document or "", c.document_name)) for c in citations]


def coverage_record(status: ReadStatus) -> dict[str, Any]:
    return {
        "document": status.name,
        "page_count": status.page_count,
        "pages_read": status.pages_read,
        "state": status.state.value,
    }


def unread_note(coverage: list[Mapping[str, Any]]) -> str | None:
    """ "Answered from the pages read so far: 12 of 40 pages of contract.pdf." when a document was still being
    read; None when every page was."""
    partial = [
        item for item in coverage
        if isinstance(item.get("pages_read"), int) and isinstance(item.get("page_count"), int)
        and item["pages_read"] < item["page_count"]
    ]  # fmt: skip
    if not partial:
        return None
    parts = [
        ngettext("{read} of {count} page of {name}", "{read} of {count} pages of {name}", item["page_count"]).format(
            read=item["pages_read"], count=item["page_count"], name=item.get("document") or "?"
        )
        for item in partial
    ]
    return _("Answered from the pages read so far: {parts}.").format(parts="; ".join(parts))


# -- the extractive answer as a route of one stream ---------------------------------------------------
def extractive_stream(source: DocumentAnswer, model: str) -> AnswerStream:
    """An AnswerStream whose text is the extractive answer (made when the stream is read, in the answer's thread)."""

    def chunks() -> Generator[str | Progress, None, GenerationStats]:
        found = source.extract()
        yield found.text
        return GenerationStats(StopReason.EOS, extras={METHOD: AnswerMethod.EXTRACTIVE.value})

    def finish(stats: GenerationStats, ttft: float | None, total: float) -> AnswerMetrics:
        return AnswerMetrics(
            model=model,
            family="extractive",
            attention="n/a",
            dtype="n/a",
            device="cpu",
            quantization=None,
            load_s=0.0,
            ttft_s=ttft,
            total_s=round(total, 3),
            prompt_tokens=None,
            new_tokens=None,
            tokens_per_s=None,
            peak_vram_mb=None,
            stopped_by=stats.stopped_by,
        )

    return AnswerStream(chunks(), finish)


@dataclass
class ExtractiveRoute(RoutedAnswer):
    """`RoutedAnswer` for the extractive answer: one stream, from the index; no model is loaded or run."""

    source: DocumentAnswer | None = None

    def __iter__(self) -> Generator[AnswerStream, None, None]:
        assert self.source is not None
        spec = self.chain[0]
        self.current = spec
        started = time.perf_counter()
        stream = extractive_stream(self.source, spec.key)
        stream.raise_errors = False
        yield stream
        stream.consume()
        elapsed = time.perf_counter() - started
        if stream.error is not None:
            self._record(spec, AttemptOutcome.ERROR, f"{type(stream.error).__name__}: {stream.error}", elapsed)
            self.error = f"The passages could not be searched: {stream.error}"
            return
        stopped = stream.metrics is not None and stream.metrics.stopped_by == StopReason.CANCELLED
        plan = plan_load(self.hardware, spec, self.overrides)
        self._accept(spec, plan, stream, "stopped by the user" if stopped else "", elapsed)
