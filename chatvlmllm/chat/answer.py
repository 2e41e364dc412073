"""One answer's lifecycle: from the question saved to the assistant turn saved, with Stop.

`ChatSession.ask` records the question and returns an `Answer` in state `queued`. `run()` (or
`start()`, the same on a worker thread) routes the question through the fallback chain:

    queued → loading → reading → generating → done | stopped | failed

- loading: a model is being loaded (first use only); reading: an engine has the request and
  reads the pages, no text yet; generating: text is arriving.
- While it streams, the text so far is saved every `settings().partial_save_s` seconds as an
  incomplete turn, so a crash (kill -9, power loss) loses only the last seconds.
- `stop()`, from any thread and in any state, saves the text so far as stopped at once: the
  user never waits for the engine's current step (an OCR page can take seconds). The engine
  ends at its next token, page or batch; its final text and token counts then join that same
  turn. A new question may go as soon as the answer is settled (its turn saved).
- The answer names a new chat after its document and task when its question is recorded, and
  the title is saved with the question in one write.

Every state change and save happens under one lock: the generating thread, a Stop click and a
reader (the page) see one consistent answer. A display only reads `state`, `text`, `progress`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from chatvlmllm.chat import router
from chatvlmllm.chat.conversation import DEFAULT_TITLE, TURNS_NOT_SENT, Conversation, Turn, now_iso
from chatvlmllm.decisions import StopReason
from chatvlmllm.engines import AnswerStream, Message, Progress
from chatvlmllm.i18n import _
from chatvlmllm.jsonable import json_extras
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.tasks import quick_prompt_label
from chatvlmllm.settings import settings

if TYPE_CHECKING:
    from chatvlmllm.chat.session import AskOptions, ChatSession

log = logging.getLogger(__name__)

NOT_STARTED = "Stopped before the answer started."
TASK_TITLE_CHARS = 40  # a typed question names the chat by its first words


class AnswerState(StrEnum):
    QUEUED = "queued"  # the question is saved; nothing runs yet
    LOADING = "loading"  # a model of the chain is being loaded
    READING = "reading"  # an engine has the request; no text yet
    GENERATING = "generating"  # text is arriving
    DONE = "done"
    STOPPED = "stopped"  # by the user (or a new run that settled it)
    FAILED = "failed"  # no model could answer, or the answer raised

    @property
    def settled(self) -> bool:
        """The assistant turn is saved: the chat may take the next question."""
        return self in (AnswerState.DONE, AnswerState.STOPPED, AnswerState.FAILED)


def new_chat_title(conversation: Conversation, document: str | None, question: str) -> str | None:
    """ "document — task" for a chat's first question about a document, so chats with the same
    first question differ; None when the chat is not new or the user named it."""
    if conversation.turns or document is None or conversation.title not in (DEFAULT_TITLE, document):
        return None
    label = quick_prompt_label(question)
    task = _(label) if label else " ".join(question.split())[:TASK_TITLE_CHARS]  # the label in the UI's language
    return f"{document} — {task}"


StateListener = Callable[["AnswerState"], None]
ChunkListener = Callable[[str], None]
# Completes an assistant turn (final or stopped) before it is saved: an answer over whole documents adds its
# citations (chatvlmllm.chat.document_answer.DocumentAnswer.complete).
TurnCompleter = Callable[[Turn, router.RoutedAnswer], None]


class Answer:
    """An answer on its way, then answered: one object whatever thread looks at it."""

    def __init__(
        self,
        session: ChatSession,
        question: Turn,
        routed: router.RoutedAnswer,
        spec: ModelSpec,
        options: AskOptions,
        turns_not_sent: int = 0,
        complete: TurnCompleter | None = None,
    ):
        self.session = session
        self.question = question
        self.routed = routed
        self.spec = spec  # the model asked for (a fallback may answer instead: see `model`)
        self.options = options
        self.turns_not_sent = turns_not_sent
        self._completer = complete
        self.turn: Turn | None = None  # the assistant turn, once settled
        self.started_at = now_iso()
        self.created = time.perf_counter()
        self.stream_started = 0.0  # when the current engine got the request (perf_counter)
        self._state = AnswerState.QUEUED
        self._lock = threading.RLock()  # state, turn and every save of it
        self._cancelled = threading.Event()
        self._settled = threading.Event()  # the assistant turn is saved
        self._ended = threading.Event()  # nothing runs any more; the final counts are saved
        self._running = False
        self._stream: AnswerStream | None = None
        self._position: int | None = None  # where the assistant turn is saved
        self._partial_save_s = settings().partial_save_s
        self._last_save = time.monotonic()
        self._listeners: list[StateListener] = []
        routed.on_load = self._loading

    # -- what a display reads ----------------------------------------------
    @property
    def state(self) -> AnswerState:
        return self._state

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._cancelled.is_set()

    @property
    def text(self) -> str:
        """The text of the engine answering now (a fallback starts again from nothing)."""
        stream = self._stream
        return stream.text if stream is not None else ""

    @property
    def progress(self) -> Progress | None:
        stream = self._stream
        return stream.progress if stream is not None else None

    @property
    def model(self) -> str:
        """The model at work now: the one asked for, or the fallback being tried."""
        current = self.routed.current
        return current.key if current is not None else self.spec.key

    @property
    def retrying(self) -> bool:
        """The engine's answer has ended but the answer is not settled: the router judges it, and
        tries the next model when it is not usable."""
        stream = self._stream
        return stream is not None and stream.metrics is not None and not self._state.settled

    def elapsed(self) -> float:
        return time.perf_counter() - self.created

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the assistant turn is saved (done, stopped or failed); False on timeout."""
        return self._settled.wait(timeout_s)

    def join(self, timeout_s: float | None = None) -> bool:
        """Until nothing runs any more (after Stop: the engine's final counts are saved too)."""
        return self._ended.wait(timeout_s)

    def on_state(self, listener: StateListener) -> None:
        """Call `listener(state)` after each change, on the thread that made it."""
        self._listeners.append(listener)

    # -- the question ----------------------------------------------------------
    def record_question(self, title: str | None) -> None:
        """Save the question; a new chat's `title` is set and saved in the same write."""
        if title is not None:
            self.session.conversation.title = title
        self.session.save_turn(self.question)

    # -- running -----------------------------------------------------------------
    def start(self) -> threading.Thread:
        """`run()` on a daemon thread, in a copy of the caller's context (the UI language travels with it)."""
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(self.run,), name=f"answer-{self.session.id[:8]}", daemon=True
        )
        thread.start()
        return thread

    def run(self, on_chunk: ChunkListener | None = None) -> Turn:
        """Route the question and stream the answer here, to the saved turn; returns it.

        `on_chunk(text)` sees each piece of text as it arrives (before it is saved as partial).
        """
        with self._lock:
            if self._running:
                raise RuntimeError("an answer runs once")
            self._running = True
            if self._state.settled:  # stopped while queued: nothing to run
                assert self.turn is not None
                return self.turn
        error = None
        try:
            self._stream_all(on_chunk)
        except Exception as exc:  # an engine failing outside the router: keep the app and the history
            log.exception("answer failed")
            error = f"The answer failed: {type(exc).__name__}: {exc}"
        finally:
            self._end(error)
        assert self.turn is not None
        return self.turn

    def stop(self) -> Turn | None:
        """Stop from any thread: the text so far is saved at once as stopped by the user.

        Returns the saved turn (the finished one, if the answer was already settled).
        """
        self._cancelled.set()
        with self._lock:
            stream = self._stream
            if stream is not None:
                stream.cancel()  # the engine ends at its next token, page or batch
            if self._state.settled:
                return self.turn
            self._settle(self._assistant_turn(None), AnswerState.STOPPED)
            log.info("answer in chat %s stopped; the engine ends its step in the background", self.session.id)
            if not self._running:
                self._ended.set()  # never started: no engine step to wait for
            turn = self.turn
        self._notify(AnswerState.STOPPED)
        return turn

    def _stream_all(self, on_chunk: ChunkListener | None) -> None:
        routes = iter(self.routed)
        try:
            for stream in routes:
                self._begin_stream(stream)
                for chunk in stream:
                    if on_chunk is not None:
                        on_chunk(chunk)
                    self._arrived()
                if self._cancelled.is_set():
                    if stream.metrics is not None and stream.metrics.stopped_by == StopReason.CANCELLED:
                        next(routes, None)  # the router records the stopped answer and ends
                    break
        finally:
            routes.close()  # no further models after a Stop or a failure

    def _begin_stream(self, stream: AnswerStream) -> None:
        with self._lock:
            self._stream = stream
            self.stream_started = time.perf_counter()
            if self._cancelled.is_set():
                stream.cancel()  # stopped while the model loaded: the engine skips the request
        self._move(AnswerState.READING)

    def _loading(self, spec: ModelSpec) -> None:
        log.info("loading %s for chat %s", spec.key, self.session.id)
        self._move(AnswerState.LOADING)

    def _arrived(self) -> None:
        """A piece of text arrived: the answer is generating; save it when a save is due."""
        self._move(AnswerState.GENERATING)
        if time.monotonic() - self._last_save < self._partial_save_s:
            return
        with self._lock:
            if self._state is AnswerState.GENERATING:
                self._last_save = time.monotonic()
                self._save(self._assistant_turn(None, incomplete=True))

    def _move(self, state: AnswerState) -> None:
        with self._lock:
            if self._state.settled or self._state is state:
                return
            self._state = state
        self._notify(state)

    def _notify(self, state: AnswerState) -> None:
        for listener in list(self._listeners):
            listener(state)

    # -- the assistant turn ------------------------------------------------------
    def _end(self, error: str | None) -> None:
        """The router is done (or failed): save the final turn, or complete the one Stop saved."""
        with self._lock:
            final = self._assistant_turn(error)
            stopped_early = self._state is AnswerState.STOPPED and self.turn is not None
            if stopped_early:
                self._complete_stopped(final)
            else:
                self._settle(final, _final_state(final))
            state = self._state
            self._ended.set()
        if not stopped_early:
            self._notify(state)

    def _settle(self, turn: Turn, state: AnswerState) -> None:
        self.turn = turn
        self.session.conversation.add(turn)
        self._save(turn)
        self._state = state
        self._settled.set()

    def _complete_stopped(self, final: Turn) -> None:
        """The engine has ended after Stop: the turn saved at Stop (same object, same position)
        gets what it really produced, still marked stopped by the user."""
        turn = self.turn
        assert turn is not None
        turn.text = final.text or turn.text
        turn.metrics = final.metrics or turn.metrics
        turn.attempts = final.attempts
        turn.extras = final.extras
        turn.citations = final.citations
        self._save(turn)

    def _save(self, turn: Turn) -> None:
        position = self.session.save_turn(turn, self._position)
        if position is not None:
            self._position = position

    def _assistant_turn(self, error: str | None, incomplete: bool = False) -> Turn:
        """The assistant turn as of now: partial (incomplete), stopped, or final."""
        routed, stream = self.routed, self._stream
        metrics = routed.metrics or (stream.metrics if stream is not None else None)
        measured = metrics.to_dict() if metrics is not None else {}
        model = routed.model or (metrics.model if metrics is not None else None) or self.model
        if self._cancelled.is_set():
            measured.update(model=measured.get("model", model), stopped_by=StopReason.CANCELLED)
        if error is None and routed.model is None and not incomplete:
            error = routed.error or (NOT_STARTED if stream is None else None)
        turn = Turn(
            "assistant",
            routed.text or (stream.text if stream is not None else ""),
            model=model,
            attempts=[a.to_dict() for a in routed.attempts],
            metrics=measured,
            started_at=self.started_at,
            finished_at=None if incomplete else now_iso(),
            error=error,
            settings=self.options.to_dict(),
            extras=self._extras(stream),
            incomplete=incomplete,
        )
        if self._completer is not None and not incomplete:
            self._complete(turn, routed)
        return turn

    def _complete(self, turn: Turn, routed: router.RoutedAnswer) -> None:
        """Citations and such join the turn; should that fail, the answer is still saved, saying so."""
        assert self._completer is not None
        try:
            self._completer(turn, routed)
        except Exception as exc:
            log.exception("completing the answer in chat %s failed", self.session.id)
            turn.extras["warning"] = f"The citations could not be checked ({type(exc).__name__}: {exc})."

    def _extras(self, stream: AnswerStream | None) -> dict:
        extras = dict(self.routed.extras or (stream.extras if stream is not None else {}))
        messages: list[Message] = self.routed.messages
        extras.update(messages_sent=len(messages), images_sent=sum(len(m.images) for m in messages))
        if self.turns_not_sent:
            extras[TURNS_NOT_SENT] = self.turns_not_sent
        return json_extras(extras)


def _final_state(turn: Turn) -> AnswerState:
    if turn.stopped_by == StopReason.CANCELLED:
        return AnswerState.STOPPED
    return AnswerState.FAILED if turn.error else AnswerState.DONE
