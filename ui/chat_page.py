"""The Chat page: a document on the left, the conversation about it on the right.

A thin view: the chat logic is chatvlmllm.chat.session, the widgets are in ui/. Nothing here loads
a model: the page renders first, the model loads on the first question (on the answer's worker
thread, see chatvlmllm.chat.answer and ui.answer_job).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from chatvlmllm.chat.conversation import Turn
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.i18n import _
from ui import answer_job, answer_view, banners, document_view, sidebar, state, style, text_search
from ui.answer_view import OCR_QUICK_LABEL

log = logging.getLogger(__name__)


def render() -> None:
    style.apply()
    hw = state.hardware_profile()
    cache = state.engine_cache()
    catalog = state.catalog()
    statuses = state.statuses(catalog.version)
    default_key, _why, default_problem = state.initial_model(catalog.version)
    session = state.chat_session()
    answer = answer_job.running(session.id)
    busy = answer is not None
    turns = list(session.conversation.turns)  # as of now: an answer saved meanwhile shows on the next run

    with st.sidebar:
        options = sidebar.model_picker(catalog.models, statuses, default_key, hw)
        details = st.toggle(_("Show technical details"), key="show_details", help=_("Timings, attention and speed."))
        # Filled at the end of the run, so they show this run's answer.
        runtime_box, chats_box, transcript_box = st.container(), st.container(), st.container()
    spec = catalog.models[options.model]
    # The quick prompts, the input and the explanation follow the model that will really answer.
    answering = state.answering_model(catalog.version, options.model, options.fallback, options.language)
    ocr_only = "chat" not in catalog.models[answering].caps

    state.show_flashes()
    if catalog.error:
        st.error(_("{error} — using the built-in models only.").format(error=catalog.error))
    banners.availability(statuses, default_key, default_problem, options.model, answering, ocr_only)

    document_col, chat_col = st.columns([1, 1], gap="large")
    with document_col, st.container(key=style.DOCUMENT_COLUMN):
        document_view.render(session, options.language)
        text_search.render(session)
    with chat_col:
        quick = answer_view.quick_prompts(session, ocr_only, busy)
        pane, retry = _chat_pane(session, turns, details, busy, ocr_only)
        typed = st.chat_input(
            _placeholder(session, ocr_only, busy), key="question", disabled=busy or (ocr_only and not session.document)
        )
    question = typed or quick or _retried(session, retry)
    if question and not busy:
        with pane:
            shown = answer_view.show_asked(question)  # at once: setting the answer up takes a moment
            if answer_view.ask(session, question, options, hw, catalog.models, cache) is not None:
                st.rerun()  # draw the page again with the question in the history and the input disabled
            shown.empty()  # refused (the reason is shown): it is not part of the chat

    _guarded(sidebar.runtime_panel, runtime_box, session, options, spec, hw, cache, details)
    _guarded(sidebar.chats_panel, chats_box, session)
    _guarded(sidebar.transcript_panel, transcript_box, session, busy)
    state.sync_url(session)
    style.keep_in_view()

    if answer is not None:
        with pane:
            answer_view.follow(answer, catalog.models)
        if answer.session is not session:  # asked in another tab on this chat: show what it saved
            state.reopen(session.id)
        st.rerun()  # the answer is saved: show it as history, with the input enabled again


def _chat_pane(
    session: ChatSession, turns: list[Turn], details: bool, busy: bool, ocr_only: bool
) -> tuple[DeltaGenerator, Turn | None]:
    """The conversation, scrolling in its own pane beside the page (ui.style sizes it; the input sits under
    it). Returns the pane (the live answer is drawn in it) and the question whose Retry was clicked."""
    pane = st.container(key=style.CHAT_PANE, height=style.CHAT_PANE_HEIGHT_PX, border=False, autoscroll=False)
    with pane:
        if not turns:
            _empty_state(session, ocr_only)
        retry = answer_view.render_history(session, turns, details, answering=busy)
        if session.save_error and not busy:
            st.warning(session.save_error)
    return pane, retry


def _retried(session: ChatSession, question: Turn | None) -> str | None:
    """The question of a Retry click, asked again about the page(s) it was about when they are still here."""
    if question is None:
        return None
    if question.document_sha256 and not session.use_pages_of(question):
        st.toast(_("That question's document is not in this chat any more: asked about the page in use."))
    return question.text


def _placeholder(session: ChatSession, ocr_only: bool, busy: bool) -> str:
    if busy:
        return _("Answering… press Stop to end it")
    if ocr_only and session.document is None:
        return _("Upload a document first: this engine reads text, it does not chat")
    if ocr_only and session.whole_documents:  # answered with the passages that match (ui.citations)
        return _("Ask about the document: the offline engine answers with the passages that match, and their pages")
    if ocr_only:
        return _("Ask to extract the text (this engine reads text; it does not answer questions)")
    return _("Ask about the document…") if session.document else _("Ask anything, or upload a document first…")


def _empty_state(session: ChatSession, ocr_only: bool) -> None:
    """What this engine can do, and the way back to the last chat (never opened silently)."""
    if ocr_only and session.whole_documents:
        text = _(
            "Ask about the document: the offline engine answers with the passages that match your question, each "
            "with its page (no model reads them). **{button}** reads the page in view."
        ).format(button=_(OCR_QUICK_LABEL))
    elif ocr_only:
        text = (
            _("Press **{button}** to read it.").format(button=_(OCR_QUICK_LABEL))
            if session.document
            else _("Upload an image or PDF: the offline OCR engine reads its text.")
        )
    else:
        text = (
            _("Ask about the document.") if session.document else _("Upload a document to ask about it, or just chat.")
        )
    st.markdown(text)
    last = state.last_chat(session)
    if last is not None and not session.saved:
        st.button(
            _("Continue your last chat: {chat}").format(chat=sidebar.chat_label(last)),
            key="continue_last_chat",
            icon=":material/history:",
            on_click=state.switch_to,
            args=(last.id,),
        )


def _guarded(panel: Callable[..., None], box: DeltaGenerator, *args: Any) -> None:
    """A sidebar panel that fails shows a message; the chat goes on."""
    with box:
        try:
            panel(*args)
        except Exception as exc:
            log.exception("%s failed", panel.__name__)
            st.warning(
                _("This part of the sidebar cannot be shown ({error}).").format(error=f"{type(exc).__name__}: {exc}")
            )
