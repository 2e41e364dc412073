"""A question about a document of several pages, answered over the whole document, with citations.

When the last user message of a chat completion request carries one document of two pages or more (a PDF or a
multi-page TIFF as a data URL) and asks a question, the server answers it as the app and `chatvlmllm ask` do:

- the document is read once (its text layer first, the offline OCR otherwise) into the index, which keeps it
  for the next request about the same file (the first request about a long scan waits for its OCR);
- a model that chats gets the retrieved pages' images and passages, labelled with their page numbers, and is
  asked to cite pages; its citations are checked against the pages it was sent;
- an offline engine (it understands nothing) gives the extractive answer: the best-matching passages, each with
  its page. No engine is loaded for it.

The response is the usual OpenAI one; `citations` is added beside `metrics` (and on the SSE chunk that carries the
finish reason): a list of `Citation.to_dict()` objects (`page`, `text`, `box`, `boxes`, `status`, `verified`, ...).
Earlier turns of the conversation go as text, as in the app. Anything else (a page task such as "extract the text",
a single page, several images) is answered as before, without `citations`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chatvlmllm.chat.document_answer import DocumentAnswer, DocumentRoute, document_route, extractive_stream
from chatvlmllm.chat.document_reading import read_in_background
from chatvlmllm.documents.index import DocumentIndex, ReadState
from chatvlmllm.documents.loading import Document
from chatvlmllm.engines import AnswerStream, Message
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.server.protocol import (
    ApiError,
    ChatCompletionRequest,
    ChatMessage,
    ImagePart,
    TextPart,
    decode_document,
)

log = logging.getLogger(__name__)

CITATIONS_FIELD = "citations"  # the extension field of the response (and of the last SSE chunk)


@dataclass(frozen=True)
class AskedDocument:
    """The last user message's question and the one document it carries, decoded once for the whole request."""

    question: str
    document: Document
    image_number: int  # among the request's images (counted from 1), as errors name it

    def decoded(self) -> dict[int, Document]:
        """For `to_messages`: the image it need not decode again."""
        return {self.image_number: self.document}


@dataclass
class WholeDocumentAnswer:
    """A request answered over a whole document: what the model is sent, or the extractive answer's source."""

    plan: DocumentAnswer
    messages: list[Message]  # for a model; empty for the extractive answer

    @property
    def extractive(self) -> bool:
        return self.plan.route is DocumentRoute.EXTRACTIVE

    def page_numbers(self) -> tuple[int, ...]:
        return self.plan.request.page_numbers() if self.plan.request is not None else ()

    def extractive_stream(self, model: str) -> AnswerStream:
        return extractive_stream(self.plan, model)

    def citations(self, answer: str) -> list[dict[str, Any]]:
        """The answer's citations as the response's extension field."""
        return [citation.to_dict() for citation in self.plan.citations(answer)]


def asked_document(request: ChatCompletionRequest) -> AskedDocument | None:
    """The last message's question and its one document (an image, or pages), if that is what it carries."""
    last = request.messages[-1]
    if last.role != "user" or not isinstance(last.content, list):
        return None
    images = [part for part in last.content if isinstance(part, ImagePart)]
    question = "\n".join(part.text for part in last.content if isinstance(part, TextPart)).strip()
    if len(images) != 1 or not question:
        return None
    image_number = sum(_image_count(message) for message in request.messages[:-1]) + 1
    return AskedDocument(question, decode_document(images[0].image_url.url, image_number), image_number)


def whole_document_answer(
    request: ChatCompletionRequest, spec: ModelSpec, asked: AskedDocument | None
) -> WholeDocumentAnswer | None:
    """The whole-document answer for `request`, the document read and indexed; None when the request is not a
    question about one document of several pages (it is then answered as before)."""
    if asked is None or asked.document.page_count < 2:
        return None
    question, document = asked.question, asked.document
    route = document_route(question, spec)
    if route is None:
        return None  # a page task: every page goes, as before
    index = DocumentIndex()
    _read(document, index)
    plan = DocumentAnswer(question, route, index, {document.sha256: document.name})
    answer = WholeDocumentAnswer(plan, [])
    if route is not DocumentRoute.EXTRACTIVE:
        answer.messages = [*_history(request.messages[:-1]), plan.model_message({document.sha256: document})]
    log.info("whole-document answer over %d pages of %s (%s)", document.page_count, document.name, route.value)
    return answer


def _read(document: Document, index: DocumentIndex) -> None:
    """Every page of `document` in the index: pages read before stay read (a second request reads nothing), and
    requests about the same document at once share one reading job."""
    read = read_in_background(document, index).wait()
    if read.state is ReadState.FAILED:
        raise ApiError(500, f"reading {document.name} failed: {read.error}", "document_reading_failed", "server_error")


def _image_count(message: ChatMessage) -> int:
    return sum(isinstance(part, ImagePart) for part in message.content) if isinstance(message.content, list) else 0


def _history(messages: list[ChatMessage]) -> list[Message]:
    """Earlier turns as text (their images are not sent again, as in the app)."""
    history = []
    for message in messages:
        role = "system" if message.role in ("system", "developer") else message.role
        if isinstance(message.content, list):
            text = "\n".join(part.text for part in message.content if isinstance(part, TextPart))
        else:
            text = message.content or ""
        history.append(Message(role, text))
    return history
