"""The background reading of a chat's documents, under the page picker: pages read, time left, Cancel, Resume.

When a chat holds more than one page, each of its documents is read once in the background (text layer first,
the offline OCR otherwise: `chatvlmllm.chat.document_reading.keep_reading`), so questions can cover every page.
A reading stopped by a restart resumes by itself when the chat is open again; one stopped with Cancel waits
for Resume. Questions asked meanwhile are answered from the pages read so far (and say so).

The status redraws itself (a fragment, every second) while a document is being read, and the whole page once
when the last reading ends.
"""

from __future__ import annotations

import logging

import streamlit as st

from chatvlmllm.chat.document_reading import keep_reading, read_in_background
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.documents.index import PageSource, ReadState, ReadStatus
from chatvlmllm.documents.loading import Document
from chatvlmllm.documents.reading import ReadingJob, ReadProgress, job_of
from chatvlmllm.i18n import N_, _, format_number, ngettext

log = logging.getLogger(__name__)

REDRAW_S = 1.0
SOURCE_WORDS: dict[str, str] = {  # PageSource value → how the pages were read (translated where shown)
    PageSource.TEXT_LAYER: N_("{count} from the text layer"),
    PageSource.OCR: N_("{count} by OCR"),
    PageSource.NONE: N_("{count} without text"),
}


def render(session: ChatSession, language: str | None) -> None:
    """Start (or resume) the readings this chat needs, and show how far each got."""
    documents = to_read(session)
    if not documents:
        return
    jobs = [keep_reading(document, session.index, language) for document in documents]
    reading = any(job is not None and not job.progress().finished for job in jobs)
    st.fragment(run_every=REDRAW_S if reading else None)(_status)(session, documents, language, reading)


def to_read(session: ChatSession) -> list[Document]:
    """Every document of a chat with more than one page (a single page goes with the question as it is)."""
    return list(session.documents.values()) if session.page_count > 1 else []


def _status(session: ChatSession, documents: list[Document], language: str | None, was_reading: bool) -> None:
    still_reading = False
    with st.container(key="reading_status"):
        for document in documents:
            job = job_of(document.sha256, session.index)
            progress = job.progress() if job is not None else None
            if progress is not None and not progress.finished:
                still_reading = True
                _running(document, progress, job)
            else:
                _settled(session, document, session.index.status(document.sha256), progress, language)
    if was_reading and not still_reading:
        st.rerun()  # the page as it is now that every reading ended (this fragment stops redrawing)


def _running(document: Document, progress: ReadProgress, job: ReadingJob | None) -> None:
    done = ngettext(
        "Reading {name}: {read} of {count} page", "Reading {name}: {read} of {count} pages", progress.page_count
    ).format(name=document.name, read=format_number(progress.pages_read), count=format_number(progress.page_count))
    if progress.seconds_left is not None:
        done += " · " + _("about {seconds} s left").format(seconds=format_number(round(progress.seconds_left)))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.progress(progress.fraction, text=done)
        st.button(
            _("Cancel"),
            key=f"cancel_reading_{document.sha256[:12]}",
            icon=":material/cancel:",
            on_click=job.cancel if job is not None else None,
            help=_("Stop reading; the pages read so far stay, and questions are answered from them."),
        )


def _settled(
    session: ChatSession,
    document: Document,
    status: ReadStatus | None,
    progress: ReadProgress | None,
    language: str | None,
) -> None:
    if status is None:
        return
    if status.complete:
        st.caption(f":material/task_alt: {_read_caption(document, status)}")
        return
    key = f"resume_reading_{document.sha256[:12]}"
    args = (document, session, language)
    if status.state is ReadState.FAILED:
        why = progress.error if progress is not None and progress.error else _("see the log")
        st.warning(_("Reading {name} failed ({why}).").format(name=document.name, why=why))
        st.button(_("Try again"), key=key, icon=":material/refresh:", on_click=_resume, args=args)
        return
    stopped = ngettext(
        "Reading {name} stopped after {read} of {count} page: questions are answered from the pages read.",
        "Reading {name} stopped after {read} of {count} pages: questions are answered from the pages read.",
        status.page_count,
    ).format(name=document.name, read=format_number(status.pages_read), count=format_number(status.page_count))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f":material/pause_circle: {stopped}")
        st.button(_("Resume"), key=key, icon=":material/play_arrow:", on_click=_resume, args=args)


def _read_caption(document: Document, status: ReadStatus) -> str:
    sources = ", ".join(
        _(SOURCE_WORDS[source]).format(count=format_number(count))
        for source, count in sorted(status.sources.items())
        if source in SOURCE_WORDS and count
    )
    read = ngettext("{name}: {count} page read", "{name}: all {count} pages read", status.page_count).format(
        name=document.name, count=format_number(status.page_count)
    )
    return f"{read} ({sources})" if sources else read


def _resume(document: Document, session: ChatSession, language: str | None) -> None:
    read_in_background(document, session.index, language)
