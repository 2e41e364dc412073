"""Chat messages: the history, and a new answer streamed token by token.

Model text is rendered with st.markdown, whose default keeps raw HTML escaped: a model
(or a document it read) cannot inject markup into the page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import streamlit as st

from chatvlmllm.cache import EngineCache
from chatvlmllm.catalog import ModelSpec
from chatvlmllm.chat import QUICK_PROMPTS, AskOptions, ChatSession, PendingAnswer
from chatvlmllm.conversation import Turn
from chatvlmllm.engines import AnswerStream
from chatvlmllm.errors import UserError
from chatvlmllm.hardware import HardwareProfile

OUTCOME_ICONS = {
    "answered": ":material/check_circle:",
    "skipped": ":material/skip_next:",
    "load_failed": ":material/error:",
    "error": ":material/error:",
    "oom_retry": ":material/replay:",
}


def quick_prompts(session: ChatSession) -> str | None:
    """One button per common job; returns the prompt of the one clicked."""
    no_document = session.document is None
    clicked = None
    with st.container(horizontal=True):
        for label, prompt in QUICK_PROMPTS.items():
            if st.button(label, key=f"quick_{label}", disabled=no_document, help=prompt):
                clicked = prompt
    return clicked


def render_history(session: ChatSession) -> None:
    for turn in session.conversation.turns:
        with st.chat_message(turn.role):
            if turn.role == "user":
                _user_body(turn)
            else:
                _assistant_body(session, turn)


def _user_body(turn: Turn) -> None:
    st.markdown(turn.text)
    if turn.document:
        st.caption(f":material/description: {turn.document_label()}")


def _assistant_body(session: ChatSession, turn: Turn) -> None:
    layout = turn.extras.get("layout")
    if layout:
        _render_layout(layout, session.turn_image(_question_of(session, turn)), key=f"layout_{turn.started_at}")
        if turn.text:
            with st.expander("Answer as text"):
                st.markdown(turn.text)
    elif turn.text:
        st.markdown(turn.text)
    if turn.error and turn.text:
        st.warning(turn.error)
    elif turn.error:
        st.error(turn.error)
    if turn.metrics or turn.model:
        st.caption(turn.caption())
    if turn.fell_back:
        with st.expander(f"Fallback: {len(turn.attempts)} attempt(s)"):
            for attempt in turn.attempts:
                icon = OUTCOME_ICONS.get(attempt.get("outcome", ""), ":material/warning:")
                reason = f" — {attempt['reason']}" if attempt.get("reason") else ""
                seconds = attempt.get("seconds") or 0
                st.markdown(f"{icon} `{attempt.get('model')}`: {attempt.get('outcome')}{reason} ({seconds:.2f} s)")


def _question_of(session: ChatSession, answer: Turn) -> Turn:
    """The user turn an answer replies to (for its page image)."""
    turns = session.conversation.turns
    index = next((i for i, t in enumerate(turns) if t is answer), len(turns))
    return next((t for t in reversed(turns[:index]) if t.role == "user"), answer)


def _render_layout(layout: list[dict] | dict, image, key: str) -> None:
    try:
        from ui.layout_view import render_layout
    except ImportError:  # the layout view is optional: show the elements' text
        for element in layout if isinstance(layout, list) else layout.get("elements", []):
            st.markdown(str(element.get("text", "")))
        return
    render_layout(layout, image, key=key)


def answer(
    session: ChatSession,
    question: str,
    options: AskOptions,
    hw: HardwareProfile,
    catalog: Mapping[str, ModelSpec],
    cache: EngineCache,
) -> Turn | None:
    """Ask, stream the answer into the page, and render it like the history."""
    try:
        pending = session.ask(question, options, hw, catalog, cache)
    except UserError as exc:
        st.error(str(exc))
        return None
    with st.chat_message("user"):
        _user_body(session.conversation.turns[-1])
    with st.chat_message("assistant"):
        stop_slot = st.empty()
        # Clicking Stop starts a new run. Streamlit interrupts this one at its next output, the
        # `finally` cancels the generation and saves the partial answer as "cancelled", and the new
        # run waits for that (ChatSession.settle in app.py) before it draws the history.
        stop_slot.button("Stop", icon=":material/stop_circle:", key="stop_generation", help="Stop this answer")
        live = st.empty()
        error = None
        try:
            for stream in _streams(pending, live):
                with live.container():
                    st.write_stream(pending.chunks(stream), cursor="▌")
        except Exception as exc:  # an engine failing outside the router: keep the app and the history
            error = f"The answer failed: {type(exc).__name__}: {exc}"
        finally:
            turn = pending.finish(error)
        stop_slot.empty()
        with live.container():
            _assistant_body(session, turn)
        if session.save_error:
            st.warning(session.save_error)
    return turn


def _streams(pending: PendingAnswer, live) -> Iterator[AnswerStream]:
    """The router's streams, with progress shown while a model loads."""
    routes = iter(pending)
    first = True
    while True:
        if first and not pending.first_model_loaded():
            with live.container(), st.status(f"Loading {pending.spec.key}… (first use only)") as status:
                started = time.perf_counter()
                stream = next(routes, None)
                failed = [a for a in pending.routed.attempts if a.outcome != "answered"]
                label = f"Ready after {time.perf_counter() - started:.1f} s"
                if failed:
                    label += f" ({failed[0].model}: {failed[0].outcome} — {failed[0].reason})"
                status.update(label=label, state="complete" if stream is not None else "error")
        elif first:
            stream = next(routes, None)
        else:
            with live.container(), st.spinner("That answer was not usable; trying the next model…"):
                stream = next(routes, None)
        if stream is None:
            return
        first = False
        yield stream
