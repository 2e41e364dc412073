"""Chat messages: the history, and the answer being made (see ui.answer_job).

Model text goes through ui.text_view: transcriptions verbatim, prose as Markdown whose
default keeps raw HTML escaped, so a model (or a document it read) cannot inject markup.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping

import streamlit as st

from chatvlmllm.chat.conversation import DEFAULT_TITLE, Turn
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.decisions import AttemptOutcome, StopReason
from chatvlmllm.errors import UserError
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.tasks import QUICK_PROMPTS, quick_prompt_label
from ui import answer_job, text_view
from ui.answer_job import AnswerJob

log = logging.getLogger(__name__)

OUTCOME_ICONS: dict[str, str] = {
    AttemptOutcome.ANSWERED: ":material/check_circle:",
    AttemptOutcome.SKIPPED: ":material/skip_next:",
    AttemptOutcome.LOAD_FAILED: ":material/error:",
    AttemptOutcome.ERROR: ":material/error:",
    AttemptOutcome.OOM_RETRY: ":material/replay:",
}
# What an OCR-only engine can do: read the text (copy and .txt download come with every page).
OCR_QUICK_PROMPTS = {"Extract text": QUICK_PROMPTS["Extract all text"]}
STOPPED_NOTE = "Stopped by you. The text above is what was produced before stopping."


def quick_prompts(session: ChatSession, ocr_only: bool, busy: bool) -> str | None:
    """One button per job the chosen engine can do; returns the prompt of the one clicked."""
    prompts = OCR_QUICK_PROMPTS if ocr_only else QUICK_PROMPTS
    disabled = session.document is None or busy
    clicked = None
    with st.container(horizontal=True):
        for label, prompt in prompts.items():
            if st.button(label, key=quick_key(label), disabled=disabled, help=prompt):
                clicked = prompt
    return clicked


def quick_key(label: str) -> str:
    """ "Table → Markdown" → "quick_table_markdown" (a key that is also a CSS class)."""
    return "quick_" + re.sub(r"\W+", "_", label.lower()).strip("_")


def render_history(session: ChatSession, turns: list[Turn], details: bool) -> None:
    for index, turn in enumerate(turns):
        with st.chat_message("user" if turn.role == "user" else "assistant"):
            try:
                if turn.role == "user":
                    _user_body(turn)
                else:
                    _assistant_body(session, turn, _question_before(turns, index), f"turn{index}", details)
            except Exception as exc:  # stored data this version cannot draw: say so, keep the page
                log.exception("cannot show turn %d", index)
                st.warning(f"This message cannot be shown ({type(exc).__name__}: {exc}).")


def _user_body(turn: Turn) -> None:
    text_view.render_prose(turn.text)
    if turn.document:
        st.caption(f":material/description: {turn.document_label()}")


def _question_before(turns: list[Turn], index: int) -> Turn | None:
    return next((t for t in reversed(turns[:index]) if t.role == "user"), None)


def _assistant_body(session: ChatSession, turn: Turn, question: Turn | None, key: str, details: bool) -> None:
    layout = turn.extras.get("layout")
    if layout:
        image = session.turn_image(question) if question is not None else None
        _render_layout(layout, image, key=f"layout_{key}")
        if turn.text:
            with st.expander("Answer as text"):
                st.code(turn.text, language=None, wrap_lines=True)
    elif turn.text and text_view.style_of(turn, question) is text_view.TextStyle.VERBATIM:
        asked = list(question.pages) if question is not None else []
        sha = question.document_sha256 if question is not None else None

        def page_image(page: int):
            return session.page_image(sha, page) if sha else None

        text_view.render_verbatim(turn, asked, key, page_image, question.document if question else None)
    elif turn.text:
        text_view.render_prose(turn.text, key)
    if turn.stopped_by == StopReason.CANCELLED:
        st.info(STOPPED_NOTE if turn.text.strip() else "Stopped by you before the answer started.")
    elif turn.error and turn.text:
        st.warning(turn.error)
    elif turn.error:
        st.error(turn.error)
    note = turn.extras.get("warning")
    if isinstance(note, str) and note:
        st.caption(f":material/info: {note}")
    if turn.metrics or turn.model:
        st.caption(text_view.caption(turn, details))
    if turn.fell_back:
        with st.expander(f"Fallback: {len(turn.attempts)} attempt(s)"):
            for attempt in turn.attempts:
                icon = OUTCOME_ICONS.get(str(attempt.get("outcome", "")), ":material/warning:")
                reason = f" — {attempt['reason']}" if attempt.get("reason") else ""
                seconds = text_view.number(attempt.get("seconds")) or 0.0
                st.markdown(f"{icon} `{attempt.get('model')}`: {attempt.get('outcome')}{reason} ({seconds:.2f} s)")


def _render_layout(layout: list[dict] | dict, image, key: str) -> None:
    try:
        from ui.layout_view import render_layout
    except ImportError:  # the layout view is optional: show the elements' text
        for element in layout if isinstance(layout, list) else layout.get("elements", []):
            st.markdown(str(element.get("text", "")))
        return
    render_layout(layout, image, key=key)


def ask(
    session: ChatSession,
    question: str,
    options: AskOptions,
    hw: HardwareProfile,
    catalog: Mapping[str, ModelSpec],
    cache: EngineCache,
) -> AnswerJob | None:
    """Record the question and start its answer on a worker thread."""
    _name_new_chat(session, question)
    try:
        pending = session.ask(question, options, hw, catalog, cache)
    except UserError as exc:
        st.error(str(exc))
        return None
    return answer_job.start(pending, session.id)


def _name_new_chat(session: ChatSession, question: str) -> None:
    """A new chat is named "document — task", so chats with the same first question differ."""
    conversation = session.conversation
    if (
        conversation.turns
        or session.document is None
        or conversation.title not in (DEFAULT_TITLE, session.document.name)
    ):
        return  # named by the user, or not new
    task = quick_prompt_label(question) or " ".join(question.split())[:40]
    conversation.title = f"{session.document.name} — {task}"


def follow(job: AnswerJob, verbatim: bool) -> None:
    """Show the answer being made until it is saved; Stop asks the engine to end it."""
    with st.chat_message("assistant"):
        st.button(
            "Stop",
            icon=":material/stop_circle:",
            key="stop_generation",
            on_click=job.stop,
            disabled=job.stop_requested,
            help="Stop this answer; what was produced so far is kept.",
        )
        live = st.empty()
        shown = None
        while not job.done:
            # Redraw when something changed, and at least twice a second: a click (Stop) takes effect
            # at the next redraw, and eight chats answering at once must not redraw 32 times a second.
            state = (job.phase, job.stop_requested, len(job.text), job.progress, int(job.elapsed() * 2))
            if state == shown:
                time.sleep(answer_job.REDRAW_S)
                job.settle_stop()
                continue
            shown = state
            with live.container():
                fraction = answer_job.fraction(job)
                line = answer_job.status_line(job)
                if fraction is not None:
                    st.progress(fraction, text=line)
                else:
                    st.caption(f":material/hourglass_top: {line}")
                if job.text and verbatim:
                    text_view.render_live_verbatim(job.text)
                elif job.text:
                    text_view.render_prose(job.text + " ▌")
            time.sleep(answer_job.REDRAW_S)
            job.settle_stop()
