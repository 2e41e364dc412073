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

from chatvlmllm.chat.session import ChatSession
from chatvlmllm.i18n import _
from chatvlmllm.models.tasks import is_extract_all_text
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
        details = st.toggle("Show technical details", key="show_details", help="Timings, attention and speed.")
        # Filled at the end of the run, so they show this run's answer.
        runtime_box, chats_box, transcript_box = st.container(), st.container(), st.container()
    spec = catalog.models[options.model]
    ocr_only = "chat" not in spec.caps

    state.show_flashes()
    if catalog.error:
        st.error(f"{catalog.error} — using the built-in models only.")
    banners.availability(statuses, default_key, default_problem, options.model, ocr_only)

    document_col, chat_col = st.columns([1, 1], gap="large")
    with document_col:
        document_view.render(session, options.language)
        text_search.render(session)
    with chat_col:
        quick = answer_view.quick_prompts(session, ocr_only, busy)
        if not turns:
            _empty_state(session, ocr_only)
        answer_view.render_history(session, turns, details)
        if session.save_error and not busy:
            st.warning(session.save_error)

    question = st.chat_input(
        _placeholder(session, ocr_only, busy), key="question", disabled=busy or (ocr_only and not session.document)
    )
    question = question or quick
    if question and not busy:
        with chat_col:
            if answer_view.ask(session, question, options, hw, catalog.models, cache) is not None:
                st.rerun()  # draw the page again with the question in the history and the input disabled

    _guarded(sidebar.runtime_panel, runtime_box, session, options, spec, hw, cache, details)
    _guarded(sidebar.chats_panel, chats_box, session)
    _guarded(sidebar.transcript_panel, transcript_box, session)
    state.sync_url(session)
    style.focus_chat_input()

    if answer is not None:
        verbatim = "chat" not in answer.spec.caps or is_extract_all_text(answer.question.text)
        with chat_col:
            answer_view.follow(answer, verbatim)
        if answer.session is not session:  # asked in another tab on this chat: show what it saved
            state.reopen(session.id)
        st.rerun()  # the answer is saved: show it as history, with the input enabled again


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
            st.warning(f"This part of the sidebar cannot be shown ({type(exc).__name__}: {exc}).")
