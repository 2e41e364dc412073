"""The answers running in this process, by chat, and how the page words their state.

The answer itself (states, Stop, partial saves, the saved turn) is `chatvlmllm.chat.answer.Answer`;
it runs on its own worker thread. The run that asks starts it; every run while it goes on
follows it (ui.answer_view.follow), redrawing the progress and the text a few times a second.
A click (Stop, a sidebar setting) interrupts that run at its next redraw and the next run
follows the same answer again, so Stop acts at once, the sidebar stays usable, and no answer
is lost when Streamlit stops a run. The chat input stays disabled until the answer is settled
(its turn saved): one answer at a time per chat, and the history keeps strict You/Assistant order.
"""

from __future__ import annotations

import logging
import time

import streamlit as st

from chatvlmllm.chat.answer import Answer, AnswerState
from chatvlmllm.i18n import _, format_number

log = logging.getLogger(__name__)

REDRAW_S = 0.1  # how often the page looks at the answer (it redraws only on a change)


@st.cache_resource(show_spinner=False)
def _registry() -> dict[str, Answer]:
    """Answers by chat id, shared by every browser session: two tabs on one chat see one answer."""
    return {}


def running(chat_id: str) -> Answer | None:
    """The answer still being made in this chat, if any."""
    answer = _registry().get(chat_id)
    return answer if answer is not None and not answer.settled else None


def start(answer: Answer) -> Answer:
    _registry()[answer.session.id] = answer
    answer.start()
    return answer


def status_line(answer: Answer, now: float | None = None) -> str:
    """What the user waits for, in words: "Reading page 2 of 3… (14 s, about 20 s left)"."""
    now = time.perf_counter() if now is None else now
    elapsed = _("{seconds} s").format(seconds=format_number(round(now - answer.created)))
    state, model = answer.state, answer.model
    if answer.stop_requested:
        return _("Stopping… the engine ends at its next step ({elapsed})").format(elapsed=elapsed)
    if state is AnswerState.QUEUED:
        return _("Starting {model}… ({elapsed})").format(model=model, elapsed=elapsed)
    if state is AnswerState.LOADING:
        return _("Loading {model}… first use only ({elapsed})").format(model=model, elapsed=elapsed)
    if answer.retrying:
        return _("That answer was not usable; trying the next model… ({elapsed})").format(elapsed=elapsed)
    progress = answer.progress
    if progress is None or progress.total < 2:
        doing = (
            _("{model} is reading… ({elapsed})")
            if state is AnswerState.READING
            else _("{model} is answering… ({elapsed})")
        )
        return doing.format(model=model, elapsed=elapsed)
    step = progress.done + 1  # the engines count pages (engines.base.Progress.unit)
    if progress.done == 0:
        return _("Reading page {page} of {count}… ({elapsed})").format(page=step, count=progress.total, elapsed=elapsed)
    per_step = (progress.at - answer.stream_started) / progress.done
    left = max(0.0, per_step * (progress.total - progress.done) - (now - progress.at))
    return _("Reading page {page} of {count}… ({elapsed}, about {left} s left)").format(
        page=step, count=progress.total, elapsed=elapsed, left=format_number(round(left))
    )


# The bar moves on within a page at the pace of the pages before, up to this share of the page: it never
# shows a page as read before it is.
WITHIN_PAGE_MAX = 0.9


def fraction(answer: Answer, now: float | None = None) -> float | None:
    """Steps done over steps, moving on while a step is under way (at the pace of the steps before), so
    the bar does not stand still for the seconds a page takes."""
    progress = answer.progress
    if progress is None or progress.total < 1:
        return None
    done = float(progress.done)
    if 0 < progress.done < progress.total:
        now = time.perf_counter() if now is None else now
        per_step = (progress.at - answer.stream_started) / progress.done
        if per_step > 0:
            done += min(WITHIN_PAGE_MAX, max(0.0, now - progress.at) / per_step)
    return min(1.0, done / progress.total)
