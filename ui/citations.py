"""Citation chips under an answer over whole documents, and the cited page they open in the document view.

A chip ("p. 27") stands for the citations of one page (of one document): a click opens that page in the
document panel with the supporting lines highlighted (`documents.search.highlight`, the drawing the text
search uses). A citation that could not be checked (a page the model was not sent, a quote not found on the
page) gets its own chip, in another style and with words that say so; its page opens without any highlight,
with a warning: it is never shown as fact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from chatvlmllm.chat.conversation import Turn
from chatvlmllm.chat.document_answer import COVERAGE, METHOD, NO_MODEL_NOTE, AnswerMethod, unread_note
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.documents.citations import Citation, CitationStatus
from chatvlmllm.documents.search import highlight
from chatvlmllm.i18n import N_, _

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

QUOTE_CHARS = 300  # of a supporting text shown in a chip's tooltip and under the page
# Why a citation is not verified, in words (translated where shown).
UNVERIFIED_WHY: dict[CitationStatus, str] = {
    CitationStatus.PAGE_NOT_SENT: N_("the model was not given this page"),
    CitationStatus.NOT_ON_PAGE: N_("the quoted words are not on this page"),
    CitationStatus.NO_TEXT: N_("this page has not been read yet"),
}


@dataclass(frozen=True)
class PageCitations:
    """The citations of one answer that point at one page of one document, verified or not (one chip)."""

    document: str | None  # sha256
    document_name: str | None
    page: int
    verified: bool
    citations: tuple[Citation, ...]

    @property
    def status(self) -> CitationStatus:
        return self.citations[0].status


def by_page(citations: Sequence[Citation]) -> list[PageCitations]:
    """One group per (document, page, verified), in the order of their first citation."""
    groups: dict[tuple[str | None, int, bool], list[Citation]] = {}
    for citation in citations:
        groups.setdefault((citation.document, citation.page, citation.verified), []).append(citation)
    return [
        PageCitations(sha, items[0].document_name, page, verified, tuple(items))
        for (sha, page, verified), items in groups.items()
    ]


def open_key(session: ChatSession) -> str:
    return f"open_citation_{session.id}"


def chip_label(group: PageCitations, several_documents: bool) -> str:
    page = _("p. {page}").format(page=group.page)
    where = f"{group.document_name} · {page}" if several_documents and group.document_name else page
    return where if group.verified else _("{where} · unverified").format(where=where)


def _quote(text: str) -> str:
    words = " ".join(text.split())
    return f"“{words[:QUOTE_CHARS]}{'…' if len(words) > QUOTE_CHARS else ''}”"


def render_chips(session: ChatSession, turn: Turn, key: str) -> None:
    """Under an answer: the note when the documents were still being read, and one chip per cited page."""
    note = turn.extras.get(NO_MODEL_NOTE)
    if isinstance(note, str) and note:
        st.caption(f":material/info: {_(note)}")  # stored in English by the offline engine, a marked text
    coverage = turn.extras.get(COVERAGE)
    unread = unread_note(coverage) if isinstance(coverage, list) else None
    if unread and turn.extras.get(METHOD) != AnswerMethod.EXTRACTIVE:  # the extractive text says it itself
        st.caption(f":material/hourglass_top: {unread}")
    groups = by_page(turn.citations)
    if not groups:
        return
    several = len({group.document for group in groups}) > 1
    with st.container(horizontal=True, key=f"{key}_citations"):
        for number, group in enumerate(groups):
            texts = "\n\n".join(_quote(citation.text) for citation in group.citations)
            why = _(UNVERIFIED_WHY.get(group.status, N_("it could not be checked")))
            st.button(
                chip_label(group, several),
                key=f"{key}_cite_{number}",
                type="secondary" if group.verified else "tertiary",
                icon=":material/format_quote:" if group.verified else ":material/help:",
                help=texts if group.verified else _("Not verified: {why}.").format(why=why) + "\n\n" + texts,
                on_click=_open,
                args=(open_key(session), group),
            )


def _open(state_key: str, group: PageCitations) -> None:
    st.session_state[state_key] = group


def close(session: ChatSession) -> None:
    st.session_state.pop(open_key(session), None)


def render_open(session: ChatSession) -> bool:
    """The cited page in the document panel, its supporting lines highlighted; False when no chip is open."""
    group = st.session_state.get(open_key(session))
    if not isinstance(group, PageCitations):
        return False
    with st.container(key="cited_page"):
        st.button(
            _("Back to the document"),
            key="close_citation",
            icon=":material/close:",
            on_click=close,
            args=(session,),
        )
        image = cited_page(session, group)
        name = group.document_name or (session.document.name if session.document else "")
        if image is None:
            st.info(_("Page {page} of {name} is not here (the document is not in this chat).").format(
                page=group.page, name=name))  # fmt: skip
        else:
            caption = (
                _("{name} — page {page}: the cited lines are highlighted")
                if group.verified
                else _("{name} — page {page}: nothing highlighted, the citation is not verified")
            )
            st.image(image, caption=caption.format(name=name, page=group.page), width="stretch")
        _explain(group)
    return True


def _explain(group: PageCitations) -> None:
    quotes = "\n\n".join(_quote(citation.text) for citation in group.citations)
    if group.verified:
        st.caption(quotes)
        return
    why = _(UNVERIFIED_WHY.get(group.status, N_("it could not be checked")))
    st.warning(
        _("Unverified citation: the answer cites page {page} for the words below, but {why}. Check the page "
          "yourself.").format(page=group.page, why=why) + "\n\n" + quotes,
        icon=":material/help:",
    )  # fmt: skip


def cited_page(session: ChatSession, group: PageCitations) -> Image.Image | None:
    """The cited page's image with each verified citation's lines highlighted (nothing drawn for the others)."""
    sha = group.document or session.active_document
    image = session.page_image(sha, group.page) if sha else None
    if image is None:
        return None
    matches = [match for citation in group.citations if citation.verified for match in citation.matches()]
    return highlight(image, matches, page=group.page) if matches else image
