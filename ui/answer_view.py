"""Chat messages: the history, and the answer being made (chatvlmllm.chat.answer, see ui.answer_job).

Model text goes through ui.text_view: transcriptions verbatim, prose as Markdown whose
default keeps raw HTML escaped, so a model (or a document it read) cannot inject markup.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from chatvlmllm.chat.answer import Answer
from chatvlmllm.chat.conversation import (
    NOT_ANSWERED_NOTE,
    Turn,
    attempt_reason,
    outcome_words,
    unanswered_questions,
)
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.decisions import AttemptOutcome, StopReason
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import N_, _, format_number, ngettext
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.tasks import QUICK_PROMPTS, classify, is_extract_all_text
from ui import answer_job, citations, text_view

log = logging.getLogger(__name__)

OUTCOME_ICONS: dict[str, str] = {
    AttemptOutcome.ANSWERED: ":material/check_circle:",
    AttemptOutcome.SKIPPED: ":material/skip_next:",
    AttemptOutcome.LOAD_FAILED: ":material/error:",
    AttemptOutcome.ERROR: ":material/error:",
    AttemptOutcome.OOM_RETRY: ":material/replay:",
}
# What an OCR-only engine can honestly do: read the text (copy and .txt download come with every page), build
# the tables its line boxes lay out as tables, find key fields by pattern (labelled as such). Not "Summarise".
OCR_QUICK_LABEL = N_("Extract text")
OCR_QUICK_PROMPTS = {
    OCR_QUICK_LABEL: QUICK_PROMPTS["Extract all text"],
    "Table → Markdown": QUICK_PROMPTS["Table → Markdown"],
    "Key fields → JSON": QUICK_PROMPTS["Key fields → JSON"],
}
# How a model of the fallback chain that did not answer is named beside the answer.
NOT_ANSWERED_BECAUSE: dict[str, str] = {
    AttemptOutcome.SKIPPED: N_("cannot run here"),
    AttemptOutcome.LOAD_FAILED: N_("failed to load"),
    AttemptOutcome.ERROR: N_("failed"),
    AttemptOutcome.OOM_RETRY: N_("ran out of memory"),
    AttemptOutcome.EMPTY: N_("gave an empty answer"),
    AttemptOutcome.REPETITION: N_("kept repeating itself"),
}
STOPPED_NOTE = N_("Stopped by you. The text above is what was produced before stopping.")
STOPPED_EARLY_NOTE = N_("Stopped by you before the answer started.")


def quick_prompts(session: ChatSession, ocr_only: bool, busy: bool) -> str | None:
    """One button per job the chosen engine can do, in the interface language; returns the prompt of the
    one clicked (as the model gets it: in the interface language too)."""
    prompts = OCR_QUICK_PROMPTS if ocr_only else QUICK_PROMPTS
    disabled = session.document is None or busy
    clicked = None
    with st.container(horizontal=True, key="quick_prompts"):  # ui.style brings it into view after an upload
        for label, prompt in prompts.items():  # the English label keys the button in every language
            if st.button(_(label), key=quick_key(label), disabled=disabled, help=_(prompt)):
                clicked = _(prompt)
    return clicked


def quick_key(label: str) -> str:
    """ "Table → Markdown" → "quick_table_markdown" (a key that is also a CSS class)."""
    return "quick_" + re.sub(r"\W+", "_", label.lower()).strip("_")


def render_history(session: ChatSession, turns: list[Turn], details: bool, answering: bool) -> Turn | None:
    """The conversation; a question the app never answered (it stopped: a crash) or whose answer it left
    incomplete gets a Retry button. Returns the question whose Retry was clicked. `answering`: the last
    question's answer is being written now (neither mark applies to it)."""
    unanswered = unanswered_questions(turns, answering)
    retry = None
    for index, turn in enumerate(turns):
        with st.chat_message("user" if turn.role == "user" else "assistant"):
            try:
                if turn.role == "user":
                    _user_body(turn)
                else:
                    _assistant_body(session, turn, _question_before(turns, index), f"turn{index}", details)
                cut_off = turn.incomplete and not (answering and index == len(turns) - 1)
                question = _question_before(turns, index) if cut_off else None
                if question is not None and _retry_button(index):
                    retry = question
            except Exception as exc:  # stored data this version cannot draw: say so, keep the page
                log.exception("cannot show turn %d", index)
                st.warning(_("This message cannot be shown ({error}).").format(error=f"{type(exc).__name__}: {exc}"))
        if index in unanswered:
            with st.chat_message("assistant"):
                st.warning(_(NOT_ANSWERED_NOTE), icon=":material/power_off:")
                if _retry_button(index):
                    retry = turn
    return retry


def _retry_button(index: int) -> bool:
    return st.button(
        _("Retry"),
        key=f"retry_{index}",
        icon=":material/replay:",
        help=_("Ask this question again, about the same page(s)."),
    )


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
            with st.expander(_("Answer as text")):
                st.code(turn.text, language=None, wrap_lines=True)
    elif turn.text and text_view.style_of(turn, question) is text_view.TextStyle.VERBATIM:
        asked = list(question.pages) if question is not None else []
        sha = question.document_sha256 if question is not None else None

        def page_image(page: int):
            return session.page_image(sha, page) if sha else None

        text_view.render_verbatim(turn, asked, key, page_image, question.document if question else None)
    elif turn.text:
        text_view.render_prose(turn.text, key)
    citations.render_chips(session, turn, key)  # an answer over whole documents: where each fact comes from
    if turn.stopped_by == StopReason.CANCELLED:
        st.info(_(STOPPED_NOTE) if turn.text.strip() else _(STOPPED_EARLY_NOTE))
    elif turn.error and turn.text:
        st.warning(_(turn.error))  # a stored error: translated when it is a message of the catalogue
    elif turn.error:
        st.error(_(turn.error))
    if turn.read_by:  # the offline engines say which engine read the page, beside the text
        st.caption(f":material/document_scanner: {turn.read_by}")
    note = turn.extras.get("warning")
    if isinstance(note, str) and note:
        st.caption(f":material/info: {_(note)}")  # stored in English, a marked text (docs/i18n.md)
    fallback = _fallback_note(turn)
    if fallback:
        st.caption(f":material/swap_horiz: {fallback}")
    if turn.metrics or turn.model or turn.notes():
        st.caption(text_view.caption(turn, details))
    if turn.fell_back:
        count = len(turn.attempts)
        with st.expander(
            ngettext("Fallback: {count} attempt", "Fallback: {count} attempts", count).format(count=count)
        ):
            for attempt in turn.attempts:
                icon = OUTCOME_ICONS.get(str(attempt.get("outcome", "")), ":material/warning:")
                reason = attempt_reason(attempt)  # stored in English, and as a message where it is one
                reason = f" — {reason}" if reason else ""
                seconds = _("{seconds} s").format(
                    seconds=format_number(text_view.number(attempt.get("seconds")) or 0.0, 2)
                )
                outcome = outcome_words(attempt.get("outcome"))
                st.markdown(f"{icon} `{attempt.get('model')}`: {outcome}{reason} ({seconds})")


def _fallback_note(turn: Turn) -> str:
    """ "qwen_vl_2b cannot run here; ocr_auto answered.": beside the answer, in words (the attempts' details
    stay in the expander below)."""
    first = turn.attempts[0] if turn.attempts else None
    if not turn.model or first is None or first.get("model") == turn.model:
        return ""
    why = NOT_ANSWERED_BECAUSE.get(str(first.get("outcome", "")), N_("failed"))
    return _("{chosen} {why}; {model} answered.").format(chosen=first.get("model"), why=_(why), model=turn.model)


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
) -> Answer | None:
    """Record the question (a new chat gets its title) and start its answer on its worker thread."""
    try:
        answer = session.ask(question, options, hw, catalog, cache)
    except UserError as exc:
        st.error(str(exc))
        return None
    return answer_job.start(answer)


def show_asked(question: str) -> DeltaGenerator:
    """The question and a first status line at once, before its answer is set up (the pages rendered, the
    models chosen, which takes a moment on a busy machine): a click shows its effect immediately. Returns
    the slot, to clear when the question is refused."""
    slot = st.empty()
    with slot.container():
        with st.chat_message("user"):
            text_view.render_prose(question)
        # Keyed: the page (and a test) can tell this placeholder from an answer that has been drawn.
        with st.chat_message("assistant"), st.container(key="answer_starting"):
            st.caption(f":material/hourglass_top: {_('Starting…')}")
    return slot


def follow(answer: Answer, models: Mapping[str, ModelSpec]) -> None:
    """Show the answer being made until it is saved; Stop saves what was produced so far."""
    with st.chat_message("assistant"):
        st.button(
            _("Stop"),
            icon=":material/stop_circle:",
            key="stop_generation",
            on_click=_stop,
            args=(answer,),
            disabled=answer.stop_requested,
            help=_("Stop this answer; what was produced so far is kept."),
        )
        live = st.empty()
        shown = None
        while not answer.settled:
            # Redraw when something changed, and at least twice a second: a click (Stop) takes effect
            # at the next redraw, the time and the progress move while a page is read, and eight chats
            # answering at once must not redraw 32 times a second.
            view = (answer.state, len(answer.text), answer.progress, int(answer.elapsed() * 2))
            if view != shown:
                shown = view
                _draw_live(live, answer, _verbatim(answer, models))
            answer.wait(answer_job.REDRAW_S)  # returns at once when the answer is saved


def _verbatim(answer: Answer, models: Mapping[str, ModelSpec]) -> bool:
    """Whether the text arriving is a transcription (shown as read), by the model answering now: a fallback
    OCR engine transcribes even when the model chosen would have chatted."""
    current = models.get(answer.model, answer.spec)
    if "chat" not in current.caps:
        return classify(answer.question.text) not in text_view.STRUCTURED_TASKS
    return is_extract_all_text(answer.question.text)


def _stop(answer: Answer) -> None:
    answer.stop()  # saves the stopped turn at once; this run's redraw then ends


def _draw_live(live: DeltaGenerator, answer: Answer, verbatim: bool) -> None:
    with live.container():
        fraction = answer_job.fraction(answer)
        line = answer_job.status_line(answer)
        if fraction is not None:
            st.progress(fraction, text=line)
        else:
            st.caption(f":material/hourglass_top: {line}")
        text = answer.text
        if text and verbatim:
            text_view.render_live_verbatim(text)
        elif text:
            text_view.render_prose(text + " ▌")
