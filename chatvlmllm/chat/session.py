"""A chat about documents, without any display: what the app (or a server) drives.

`ChatSession` holds one conversation, the documents uploaded into it and the page(s) in
use, and keeps the store up to date. `ChatSession.ask` records the question (saved at once)
and returns its `chatvlmllm.chat.answer.Answer`, queued: `run()` it here or `start()` it on a
worker thread; it saves the assistant turn itself, and `stop()` ends it from any thread.

A question's scope (`QuestionScope`) is every document of the chat by default, once the chat holds more
than one page: a question is then answered from the passages that match it, with citations
(`chatvlmllm.chat.document_answer`); the page picker chooses pages instead. Page tasks (extract the text, a
table, key fields) always go to the page(s) in view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chatvlmllm.chat import router
from chatvlmllm.chat.answer import Answer, new_chat_title
from chatvlmllm.chat.archive import read_chat
from chatvlmllm.chat.context import PromptBudget, prompt_budget
from chatvlmllm.chat.conversation import SCOPE, SCOPE_DOCUMENTS, Conversation, QuestionScope, Turn, now_iso
from chatvlmllm.chat.document_answer import (
    DocumentAnswer,
    DocumentRoute,
    ExtractiveRoute,
    document_route,
    understands_questions,
)
from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.chat.store import StoreError
from chatvlmllm.documents.index import DocumentIndex
from chatvlmllm.documents.loading import Document, load_document
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.errors import DocumentError, UserError
from chatvlmllm.i18n import _, ngettext
from chatvlmllm.models.catalog import ModelSpec, get_model
from chatvlmllm.models.planner import PlanOverrides, plan_load

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.chat.store import ChatStore
    from chatvlmllm.models.hardware import HardwareProfile

log = logging.getLogger(__name__)


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
            raise UserError(_("Max new tokens must be at least 1."))
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
        self.pending: Answer | None = None  # the latest answer (settled, or still on its way)
        self.save_error: str | None = None  # why the last turn is not in the store, if it is not
        # Questions cover every document of the chat (when it has more than one page), or the pages chosen.
        self.scope = QuestionScope.DOCUMENTS
        self._index: DocumentIndex | None = None

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
            session.save_error = _("The chat {chat} could not be opened ({error}); this is a new chat.").format(
                chat=session_id, error=exc
            )
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
                self.save_error = _("{error} The document is in use, but it is not saved with the chat.").format(
                    error=exc
                )
                return
            self.save_error = None
            self.saved = True

    def select_pages(self, pages: list[int]) -> None:
        """Pages (1-based) of the active document the next question is about (the scope becomes those pages)."""
        doc = self.document
        if doc is None:
            raise DocumentError(_("Upload a document before choosing pages."))
        bad = [p for p in pages if not 1 <= p <= doc.page_count]
        if not pages or bad:
            raise DocumentError(
                ngettext(
                    "{name} has {count} page; choose pages between 1 and {count}.",
                    "{name} has {count} pages; choose pages between 1 and {count}.",
                    doc.page_count,
                ).format(name=doc.name, count=doc.page_count)
            )
        self.scope = QuestionScope.PAGES
        if pages != self.pages:
            self.pages = list(pages)
            if self.store is not None and self.saved:
                self._store_call(self.store.save_session, self.conversation, self.active_document, self.pages)

    @property
    def index(self) -> DocumentIndex:
        """The pages read and their passages, in the chats' database file."""
        if self._index is None:
            self._index = DocumentIndex(self.store.path if self.store is not None else None)
        return self._index

    @property
    def page_count(self) -> int:
        """Pages in all the chat's documents."""
        return sum(document.page_count for document in self.documents.values())

    @property
    def whole_documents(self) -> bool:
        """Questions are asked over every document of the chat (the default once it has more than one page)."""
        return self.scope is QuestionScope.DOCUMENTS and self.page_count > 1

    def select_scope(self, scope: QuestionScope) -> None:
        """DOCUMENTS: questions cover every document (the pages in use stay the ones in view); PAGES: the pages
        chosen with `select_pages`."""
        self.scope = scope

    def use_pages_of(self, question: Turn) -> bool:
        """Put the document and pages `question` was about back in use (to ask it again); False, with the
        choice unchanged, when that document is not in this chat (any more) or no longer has those pages.
        A question asked over the whole document(s) is asked over them again (it has no pages of its own)."""
        doc = self.documents.get(question.document_sha256 or "")
        whole = question.extras.get(SCOPE) == QuestionScope.DOCUMENTS
        if doc is None or not (whole or question.pages) or not all(1 <= p <= doc.page_count for p in question.pages):
            return False
        if doc.sha256 != self.active_document:
            self.attach(doc)
        if question.pages:
            self.select_pages(list(question.pages))
        if whole:  # a page question leaves the scope as it is: page tasks are asked about pages in either
            self.select_scope(QuestionScope.DOCUMENTS)
        return True

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
            raise UserError(_("A chat needs a name."))
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
            self.save_error = _("{error} The chat goes on, but this change is not saved.").format(error=exc)
            return False
        self.save_error = None
        return True

    # -- asking --------------------------------------------------------------
    def settle(self, timeout_s: float = 30.0) -> bool:
        """Stop an answer still running in this chat and wait until nothing runs any more.

        Stop saves the stopped turn at once; this also waits for the engine to end its step and
        for its final counts to join that turn. Returns False when that did not happen in time
        (e.g. a model still loading).
        """
        pending = self.pending
        if pending is None or pending.join(0):
            return True
        pending.stop()
        return pending.join(timeout_s)

    def ask(
        self,
        question: str,
        options: AskOptions,
        hardware: HardwareProfile,
        catalog: Mapping[str, ModelSpec],
        cache: EngineCache | None = None,
    ) -> Answer:
        """Record the question (saved at once, with a new chat's title) and return its answer, queued.

        One answer at a time per chat: the next question waits until the answer before is saved.
        """
        question = question.strip()
        if not question:
            raise UserError(_("Type a question first."))
        if self.pending is not None and not self.pending.settled:
            raise UserError(_("The answer before is still being written: wait for it, or press Stop."))
        spec = get_model(options.model, dict(catalog))
        route = document_route(question, spec) if self.whole_documents else None
        if route is not None:
            return self._ask_documents(question, route, spec, options, hardware, catalog, cache)
        generation = options.generation()
        doc = self.document
        if doc is not None:
            doc.check_request([p - 1 for p in self.pages])  # refuse before rendering anything
        budget = prompt_budget(spec, plan_load(hardware, spec, options.overrides()), generation.budget())
        chain = router.planned_chain(question, spec, hardware, catalog, options.fallback, options.language)
        title = new_chat_title(self.conversation, doc.name if doc else None, question)
        turn = Turn(
            "user",
            question,
            document=doc.name if doc else None,
            document_sha256=doc.sha256 if doc else None,
            pages=list(self.pages) if doc else [],
            settings=options.to_dict(),
        )
        turn.finished_at = turn.started_at
        messages = self._messages_for(turn, budget)
        if turn.pages:  # engines that label pages use the document's numbers, not positions
            generation.page_numbers = tuple(turn.pages)
        routed = router.answer(messages, chain, hardware, generation, options.overrides(), cache)
        self.pending = Answer(self, turn, routed, spec, options, self.conversation.dropped_turns)
        self.pending.record_question(title)
        return self.pending

    def _ask_documents(
        self,
        question: str,
        route: DocumentRoute,
        spec: ModelSpec,
        options: AskOptions,
        hardware: HardwareProfile,
        catalog: Mapping[str, ModelSpec],
        cache: EngineCache | None,
    ) -> Answer:
        """A question over every document of the chat: the extractive answer, or a model over the retrieved pages."""
        generation = options.generation()
        doc = self.document
        names = {sha: document.name for sha, document in self.documents.items()}
        turn = Turn(
            "user",
            question,
            document=doc.name if doc else None,
            document_sha256=doc.sha256 if doc else None,
            settings=options.to_dict(),
            extras={SCOPE: QuestionScope.DOCUMENTS.value, SCOPE_DOCUMENTS: list(names.values())},
        )
        turn.finished_at = turn.started_at
        title = new_chat_title(self.conversation, doc.name if doc else None, question)
        plan = DocumentAnswer(question, route, self.index, names)
        routed: router.RoutedAnswer
        if route is DocumentRoute.EXTRACTIVE:
            self.conversation.add(turn)
            self.conversation.dropped_turns = 0
            engines = cache or default_cache()
            routed = ExtractiveRoute([spec], [], generation, hardware, options.overrides(), engines, source=plan)
        else:
            budget = prompt_budget(spec, plan_load(hardware, spec, options.overrides()), generation.budget())
            messages = self._document_messages(turn, plan, budget)
            assert plan.request is not None
            generation.page_numbers = plan.request.page_numbers()
            chain = [
                model
                for model in router.planned_chain(question, spec, hardware, catalog, options.fallback, options.language)
                if understands_questions(model)
            ]
            routed = router.answer(messages, chain, hardware, generation, options.overrides(), cache)
        self.pending = Answer(self, turn, routed, spec, options, self.conversation.dropped_turns, plan.complete)
        self.pending.record_question(title)
        return self.pending

    def _document_messages(self, question: Turn, plan: DocumentAnswer, budget: PromptBudget) -> list[Message]:
        """The conversation so far as text, in what the question with its retrieved pages leaves of the budget,
        then that question."""
        title = self.conversation.title
        self.conversation.add(question)
        try:
            asked = plan.model_message(self.documents)
            history = self.conversation.engine_messages(None, budget.beside(asked, question.text))
            return [*history[:-1], asked]
        except DocumentError:
            self.conversation.turns.pop()
            self.conversation.title = title
            raise

    def _messages_for(self, question: Turn, budget: PromptBudget) -> list[Message]:
        """Add the question to the conversation and render what is sent; a page that cannot be
        rendered takes the question back out (it was not asked)."""
        title = self.conversation.title
        self.conversation.add(question)
        try:
            # One image object per page for this request: `_question_carries_its_pages` recognises
            # a page already sent by identity, and the document keeps only its last pages rendered.
            rendered: dict[tuple[str, int], Image.Image | None] = {}

            def page_once(sha256: str, page: int) -> Image.Image | None:
                if (sha256, page) not in rendered:
                    rendered[sha256, page] = self.page_image(sha256, page)
                return rendered[sha256, page]

            sent = self.conversation.engine_messages(page_once, budget, self.page_pixels)
            return _question_carries_its_pages(sent, question, page_once)
        except DocumentError:
            self.conversation.turns.pop()
            self.conversation.title = title  # `add` may have named the chat after this question
            raise

    def save_turn(self, turn: Turn, position: int | None = None) -> int | None:
        """Save a turn at once, with the chat's title (or over the turn saved at `position`: an
        answer growing, then finished); returns its position.

        If the store fails, the turn stays in this session, `save_error` says why, and None is returned.
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
            self.save_error = _("{error} The chat goes on, but this turn is not saved.").format(error=exc)
            return None
        self.save_error = None
        self.saved = True
        return position


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
