"""A chat about documents, without any display: what the app (or a server) drives.

`ChatSession` holds one conversation, the documents uploaded into it and the page(s) in
use, and keeps the store up to date. `ChatSession.ask` records the question and returns
a `PendingAnswer`: iterate it for the AnswerStreams to display (the fallback router may
produce more than one), pass each through `PendingAnswer.chunks` to the display, then
call `finish()` — in a `finally`, so that an interrupted display (a stop button, a
closed tab) still cancels the generation and saves what was answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chatvlmllm.chat import router
from chatvlmllm.chat.archive import read_chat
from chatvlmllm.chat.context import prompt_budget
from chatvlmllm.chat.conversation import TURNS_NOT_SENT, Conversation, Turn, now_iso
from chatvlmllm.chat.store import StoreError
from chatvlmllm.decisions import StopReason
from chatvlmllm.documents.loading import Document, load_document
from chatvlmllm.engines import AnswerStream, GenerationSettings, Message
from chatvlmllm.errors import DocumentError, UserError
from chatvlmllm.jsonable import json_extras
from chatvlmllm.models.catalog import ModelSpec, get_model
from chatvlmllm.models.planner import PlanOverrides, plan_load
from chatvlmllm.settings import settings

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.chat.store import ChatStore
    from chatvlmllm.models.hardware import HardwareProfile

log = logging.getLogger(__name__)

# A streaming answer is saved this often (as an incomplete turn), so a crash loses at most this much.


@dataclass(frozen=True)
class AskOptions:
    """What the user chose for the next answer."""

    model: str
    attention: str = "auto"
    max_new_tokens: int | None = None  # None: the model's default (see GenerationSettings)
    temperature: float = 0.0
    repetition_guard: bool = True
    fallback: bool = True
    language: str | None = None  # ISO 639-1 of the document; picks the offline engine that reads it best

    def overrides(self) -> PlanOverrides:
        return PlanOverrides(attention=self.attention)

    def generation(self) -> GenerationSettings:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UserError("Max new tokens must be at least 1.")
        return GenerationSettings(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            repetition_guard=self.repetition_guard,
            options={"lang": self.language} if self.language else {},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChatSession:
    """One conversation with its documents, kept in sync with the store."""

    def __init__(
        self,
        conversation: Conversation | None = None,
        store: ChatStore | None = None,
        documents: Mapping[str, Document] | None = None,
        active_document: str | None = None,
        pages: list[int] | None = None,
    ):
        self.conversation = conversation or Conversation()
        self.store = store
        self.documents: dict[str, Document] = dict(documents or {})
        self.added: dict[str, str] = {}  # sha256 → when the document was added to the chat (ISO time)
        self.active_document = active_document if active_document in self.documents else None
        self.pages = list(pages or [1])
        self.saved = store is not None and store.exists(self.conversation.id)
        self.pending: PendingAnswer | None = None  # the answer being generated, if any
        self.save_error: str | None = None  # why the last turn is not in the store, if it is not

    @property
    def id(self) -> str:
        return self.conversation.id

    # -- opening -------------------------------------------------------------
    @classmethod
    def new(cls, store: ChatStore | None) -> ChatSession:
        """A new, empty chat; it is written to the store at its first upload or question.

        A browser session that opens without naming a chat gets one of these, never the
        most recent chat of the store, which may belong to another session.
        """
        return cls(store=store)

    @classmethod
    def open_or_new(cls, store: ChatStore | None, session_id: str | None) -> ChatSession:
        """The chat `session_id` names if it is stored and readable, else a new one (never another chat)."""
        if store is None or not session_id or not store.exists(session_id):
            return cls.new(store)
        try:
            return cls.open(store, session_id)
        except UserError as exc:
            log.warning("chat %s cannot be opened: %s", session_id, exc)
            session = cls.new(store)
            session.save_error = f"The chat {session_id} could not be opened ({exc}); this is a new chat."
            return session

    @classmethod
    def open(cls, store: ChatStore, session_id: str) -> ChatSession:
        """A stored chat, with its documents decoded again (undecodable ones are left out)."""
        stored = store.load(session_id)
        documents = {}
        for sha, doc in stored.documents.items():
            try:
                documents[sha] = load_document(doc.data, doc.name)
            except DocumentError as exc:  # e.g. the size limit was lowered since; the transcript still opens
                log.warning("chat %s: the stored document %s is left out: %s", session_id, doc.name, exc)
                continue
        session = cls(stored.conversation, store, documents, stored.active_document, stored.pages)
        session.added = {sha: doc.added_at for sha, doc in stored.documents.items() if sha in documents}
        return session

    @classmethod
    def from_transcript(cls, store: ChatStore | None, data: bytes | str) -> ChatSession:
        """Resume a downloaded chat as a new saved chat: a JSON transcript (its documents must be uploaded
        again) or a .zip archive with its documents (chatvlmllm.chat.archive)."""
        conversation, archived = read_chat(data)
        if store is not None and store.exists(conversation.id):
            # Resuming the same transcript twice gives two chats, not one overwritten.
            conversation = Conversation(title=conversation.title, turns=conversation.turns)
        by_sha = {item.document.sha256: item.document for item in archived}
        asked = [t.document_sha256 for t in conversation.turns if t.role == "user" and t.document_sha256 in by_sha]
        active = asked[-1] if asked else next(iter(by_sha), None)  # the document of the last question
        session = cls(conversation, store, by_sha, active)
        session.added = {item.document.sha256: item.added_at or now_iso() for item in archived}
        if store is not None:
            store.save_conversation(conversation)
            store.save_session(conversation, active, session.pages)
            for sha, doc in by_sha.items():
                store.save_document(conversation.id, sha, doc.name, doc.data, session.added[sha])
            session.saved = True
        return session

    # -- documents -----------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self.documents.get(self.active_document) if self.active_document else None

    def attach(self, document: Document) -> None:
        """Make `document` the one in use (page 1) and keep its bytes with the chat."""
        self.documents[document.sha256] = document
        self.added.setdefault(document.sha256, now_iso())
        self.active_document = document.sha256
        self.pages = [1]
        if self.store is not None:
            try:
                self.store.save_session(self.conversation, self.active_document, self.pages)
                self.store.save_document(self.id, document.sha256, document.name, document.data)
            except StoreError as exc:
                self.save_error = f"{exc} The document is in use, but it is not saved with the chat."
                return
            self.save_error = None
            self.saved = True

    def select_pages(self, pages: list[int]) -> None:
        """Pages (1-based) of the active document the next question is about."""
        doc = self.document
        if doc is None:
            raise DocumentError("Upload a document before choosing pages.")
        bad = [p for p in pages if not 1 <= p <= doc.page_count]
        if not pages or bad:
            raise DocumentError(
                f"{doc.name} has {doc.page_count} page(s); choose pages between 1 and {doc.page_count}."
            )
        if pages != self.pages:
            self.pages = list(pages)
            if self.store is not None and self.saved:
                self._store_call(self.store.save_session, self.conversation, self.active_document, self.pages)

    def page_image(self, sha256: str, page: int) -> Image.Image | None:
        doc = self.documents.get(sha256)
        if doc is None or not 1 <= page <= doc.page_count:
            return None
        return doc.page(page - 1)

    def turn_image(self, turn: Turn) -> Image.Image | None:
        """The first page image a turn was about (for layout overlays), if the document is here."""
        if turn.document_sha256 and turn.pages:
            return self.page_image(turn.document_sha256, turn.pages[0])
        return None

    def rename(self, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise UserError("A chat needs a name.")
        self.conversation.title = title
        if self.store is not None and self.saved:
            self._store_call(self.store.rename, self.id, title)

    def page_pixels(self, sha256: str, page: int) -> int:
        doc = self.documents.get(sha256)
        return doc.page_pixels(page - 1) if doc is not None else 0

    def _store_call(self, write: Any, *args: Any) -> bool:
        """A store write whose failure becomes `save_error` (a "not saved" warning), never an exception."""
        try:
            write(*args)
        except StoreError as exc:
            self.save_error = f"{exc} The chat goes on, but this change is not saved."
            return False
        self.save_error = None
        return True

    # -- asking --------------------------------------------------------------
    def settle(self, timeout_s: float = 30.0) -> bool:
        """Stop an answer still being generated for this chat and wait until it is saved.

        A UI may start a new run (a stop button, a new question) while the previous run is
        still streaming on another thread; waiting here keeps the history complete and in order.
        Returns False when the previous answer did not finish in time (e.g. a model still loading).
        """
        pending = self.pending
        if pending is None or pending.done.is_set():
            return True
        pending.cancel()
        return pending.done.wait(timeout_s)

    def ask(
        self,
        question: str,
        options: AskOptions,
        hardware: HardwareProfile,
        catalog: Mapping[str, ModelSpec],
        cache: EngineCache | None = None,
    ) -> PendingAnswer:
        """Record the question (saved at once) and prepare the routed answer."""
        question = question.strip()
        if not question:
            raise UserError("Type a question first.")
        spec = get_model(options.model, dict(catalog))
        generation = options.generation()
        doc = self.document
        if doc is not None:
            doc.check_request([p - 1 for p in self.pages])  # refuse before rendering anything
        budget = prompt_budget(spec, plan_load(hardware, spec, options.overrides()), generation.budget())
        turn = Turn(
            "user",
            question,
            document=doc.name if doc else None,
            document_sha256=doc.sha256 if doc else None,
            pages=list(self.pages) if doc else [],
            settings=options.to_dict(),
        )
        turn.finished_at = turn.started_at
        self.conversation.add(turn)
        try:
            # One image object per page for this request: `_question_carries_its_pages` recognises
            # a page already sent by identity, and the document keeps only its last pages rendered.
            rendered: dict[tuple[str, int], Image.Image | None] = {}

            def page_once(sha256: str, page: int) -> Image.Image | None:
                if (sha256, page) not in rendered:
                    rendered[sha256, page] = self.page_image(sha256, page)
                return rendered[sha256, page]

            sent = self.conversation.engine_messages(page_once, budget, self.page_pixels)
            messages = _question_carries_its_pages(sent, turn, page_once)
        except DocumentError:
            self.conversation.turns.pop()  # the page cannot be rendered: the question was not asked
            raise
        if turn.pages:  # engines that label pages use the document's numbers, not positions
            generation.page_numbers = tuple(turn.pages)
        self._save(turn)
        chain_keys = router.chain_for(question, hardware, catalog, options.language) if options.fallback else ()
        chain = router.build_chain(
            spec, fallback=options.fallback, catalog=dict(catalog), chain_keys=chain_keys, language=options.language
        )
        routed = router.answer(messages, chain, hardware, generation, options.overrides(), cache)
        self.pending = PendingAnswer(self, routed, messages, spec, options, self.conversation.dropped_turns)
        return self.pending

    def _save(self, turn: Turn, position: int | None = None) -> int | None:
        """Save a turn at once (or over the partial one at `position`); returns its position.

        If the store fails, the turn stays in this session and `save_error` says why.
        """
        if self.store is None:
            return None
        try:
            if position is None:
                position = self.store.append_turn(self.conversation, turn)
            else:
                self.store.replace_turn(self.conversation, position, turn)
            if not self.saved:
                self.store.save_session(self.conversation, self.active_document, self.pages)
        except StoreError as exc:
            self.save_error = f"{exc} The chat goes on, but this turn is not saved."
            return None
        self.save_error = None
        self.saved = True
        return position


class PendingAnswer:
    """An answer on its way. Iterate for AnswerStreams; always call `finish()` at the end."""

    def __init__(
        self,
        session: ChatSession,
        routed: router.RoutedAnswer,
        messages: list[Message],
        spec: ModelSpec,
        options: AskOptions,
        turns_not_sent: int = 0,
    ):
        self.session = session
        self.turns_not_sent = turns_not_sent
        self._partial_position: int | None = None  # where the incomplete answer is saved
        self._last_partial_save = time.monotonic()
        self._partial_save_s = settings().partial_save_s
        self.routed = routed
        self.messages = messages
        self.spec = spec
        self.options = options
        self.turn: Turn | None = None
        self.started_at = now_iso()
        self._routes = iter(routed)  # a generator: `_stop` closes it
        self._current: AnswerStream | None = None
        self._current_chunks: Iterator[str] | None = None
        self._exhausted = False
        self._abandoned = False  # Stop saved the turn before the engine ended (see abandon)
        self._cancelled = threading.Event()
        self._finishing = threading.Lock()  # one assistant turn, whether finish or abandon makes it
        self.done = threading.Event()  # set once the assistant turn is saved

    def __iter__(self) -> Iterator[AnswerStream]:
        for stream in self._routes:
            self._current = stream
            self._current_chunks = None
            if self._cancelled.is_set():
                stream.cancel()
            yield stream
            if self._cancelled.is_set():
                break  # stopped: no further models
        else:
            self._exhausted = True

    def cancel(self) -> None:
        """Stop the generation from any thread; the displaying thread still calls `finish`."""
        self._cancelled.set()
        stream = self._current
        if stream is not None:
            stream.cancel()

    def chunks(self, stream: AnswerStream) -> Iterator[str]:
        """The text of `stream` for display. Kept, so `finish` can drain it after an interruption.

        While it streams, the answer so far is saved every `settings().partial_save_s` seconds as an
        incomplete turn: a crash (kill -9, power loss) then loses only the last seconds.
        """
        self._current_chunks = self._saving_partials(stream)
        return self._current_chunks

    def _saving_partials(self, stream: AnswerStream) -> Iterator[str]:
        for chunk in stream:
            yield chunk
            if time.monotonic() - self._last_partial_save >= self._partial_save_s:
                self.save_partial(stream.text)

    def save_partial(self, text: str) -> None:
        """Save `text` as this answer so far, marked incomplete (replaced by the finished turn)."""
        if self.turn is not None or not text:
            return
        self._last_partial_save = time.monotonic()
        partial = Turn(
            "assistant",
            text,
            model=self.spec.key,
            started_at=self.started_at,
            settings=self.options.to_dict(),
            extras={TURNS_NOT_SENT: self.turns_not_sent} if self.turns_not_sent else {},
            incomplete=True,
        )
        session = self.session
        if self._partial_position is None:
            self._partial_position = session._save(partial)
        else:
            session._save(partial, self._partial_position)

    def first_model_loaded(self) -> bool:
        """Whether the chosen model is already in memory (else the first answer starts with a load)."""
        plan = plan_load(self.routed.hardware, self.spec, self.options.overrides())
        return plan.runnable and self.routed.cache.peek(self.spec, plan) is not None

    @property
    def stopped(self) -> bool:
        return bool(self.turn and self.turn.stopped_by == StopReason.CANCELLED)

    def finish(self, error: str | None = None) -> Turn:
        """Record the answer as an assistant turn and save it (once).

        When the display was interrupted before the router finished (stop button, rerun,
        exception), the generation in flight is cancelled first: its cancel event ends
        `generate` at the next token, and the partial answer is kept as "cancelled".
        """
        with self._finishing:
            if self.turn is not None:
                if self._abandoned:
                    self._complete_abandoned()
                return self.turn
            try:
                if not self._exhausted:
                    self._stop()
                self.turn = self._assistant_turn(error)
                self.session.conversation.add(self.turn)
                self.session._save(self.turn, self._partial_position)
            finally:
                self.done.set()
            return self.turn

    def abandon(self) -> Turn | None:
        """Record a stopped answer now, from another thread, while the engine is still busy.

        An engine stops at its next token, page or batch; an OCR page can take seconds. The
        user's Stop should not wait for that: the text so far is saved as "cancelled" at once,
        and the generation thread's later `finish()` keeps this turn. Returns None when the
        answer is being finished right now (then wait for `done`).
        """
        self.cancel()
        if not self._finishing.acquire(blocking=False):
            return None
        try:
            if self.turn is None:
                stream = self._current
                metrics = stream.metrics.to_dict() if stream is not None and stream.metrics else {}
                metrics.update(model=metrics.get("model", self.spec.key), stopped_by=StopReason.CANCELLED)
                self.turn = Turn(
                    "assistant",
                    stream.text if stream is not None else "",
                    model=self.spec.key if stream is None else metrics["model"],
                    attempts=[a.to_dict() for a in self.routed.attempts],
                    metrics=metrics,
                    started_at=self.started_at,
                    finished_at=now_iso(),
                    error=None if stream is not None else "Stopped before the answer started.",
                    settings=self.options.to_dict(),
                    extras={TURNS_NOT_SENT: self.turns_not_sent} if self.turns_not_sent else {},
                )
                self.session.conversation.add(self.turn)
                self._partial_position = self.session._save(self.turn, self._partial_position)
                self._abandoned = True
                self.done.set()
            return self.turn
        finally:
            self._finishing.release()

    def _complete_abandoned(self) -> None:
        """The engine has now stopped: give the turn saved at Stop what it really produced.

        Stop saved the text shown at that moment with no token counts; the generation thread
        calls `finish()` once the engine ends, and the turn (same object, same position) gets the
        final text, counts, attempts and extras, still marked cancelled.
        """
        self._abandoned = False
        assert self.turn is not None
        if not self._exhausted:
            self._stop()
        final = self._assistant_turn(None)
        if final.metrics:
            final.metrics["stopped_by"] = StopReason.CANCELLED
        self.turn.text = final.text or self.turn.text
        self.turn.metrics = final.metrics or self.turn.metrics
        self.turn.attempts = final.attempts
        self.turn.extras = final.extras
        self.session._save(self.turn, self._partial_position)

    def _stop(self) -> None:
        stream = self._current
        if stream is not None:
            if stream.metrics is None:
                stream.cancel()
                try:
                    for _ in self._current_chunks or iter(stream):
                        pass  # generation ends at the next token; this collects the stats
                except Exception:  # the stream records stopped_by="error" itself; the log keeps why
                    log.warning("the stopped answer ended with an error", exc_info=True)
            if stream.metrics and stream.metrics.stopped_by == StopReason.CANCELLED:
                next(self._routes, None)  # the router records the cancelled answer and stops
        self._routes.close()  # no further models after an interruption

    def _assistant_turn(self, error: str | None) -> Turn:
        routed, stream = self.routed, self._current
        metrics = routed.metrics or (stream.metrics if stream else None)
        text = routed.text or (stream.text if stream else "")
        extras = dict(routed.extras or (stream.extras if stream else {}))
        extras.update(messages_sent=len(self.messages), images_sent=sum(len(m.images) for m in self.messages))
        if self.turns_not_sent:
            extras[TURNS_NOT_SENT] = self.turns_not_sent
        if error is None and routed.model is None:
            error = routed.error or ("Stopped before the answer started." if stream is None else None)
        return Turn(
            "assistant",
            text,
            model=routed.model or (metrics.model if metrics else None),
            attempts=[a.to_dict() for a in routed.attempts],
            metrics=metrics.to_dict() if metrics else {},
            started_at=self.started_at,
            finished_at=now_iso(),
            error=error,
            settings=self.options.to_dict(),
            extras=json_extras(extras),
        )


def _question_carries_its_pages(
    messages: list[Message], question: Turn, page_image: Callable[[str, int], Image.Image | None]
) -> list[Message]:
    """The latest question carries every page it asks about, in page order.

    The conversation attaches a page once, to the first question about it; "All pages" after a
    question about page 3 would then carry only pages 1 and 2, and an engine reading the latest
    images (offline OCR) would leave page 3 out. Earlier copies of these pages are dropped, so a
    model still sees each page once.
    """
    if not question.document_sha256 or not question.pages or not messages:
        return messages
    wanted = [page_image(question.document_sha256, page) for page in question.pages]
    images = [image for image in wanted if image is not None]
    carried = {id(image) for image in images}
    for message in messages[:-1]:
        message.images = [image for image in message.images if id(image) not in carried]
    messages[-1].images = images
    return messages
