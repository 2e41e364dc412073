"""Search in the OCR'd text: type a word, see the matching lines highlighted on the page.

Uses the line boxes of the latest answer that has them (the offline OCR engines return every
line with its box); the search and the drawing are chatvlmllm.documents.search.
"""

from __future__ import annotations

import logging

import streamlit as st

from chatvlmllm.chat.session import ChatSession
from chatvlmllm.documents.search import highlight, latest_ocr_text, pages_with_matches, search_lines
from chatvlmllm.i18n import _, ngettext

log = logging.getLogger(__name__)

SHOWN_LINES = 20


def render(session: ChatSession) -> None:
    """A search box under the document once an answer with line boxes exists; nothing before."""
    ocr = latest_ocr_text(session.conversation.turns, session.active_document)
    if ocr is None or ocr.document_sha256 not in session.documents:
        return  # nothing read yet, or the page is not here (a chat resumed without its documents)
    query = st.text_input(
        _("Search the text"),
        key=f"text_search_{session.id}",
        placeholder=_("e.g. total"),
        help=_(
            "Finds the lines of the OCR'd text that contain these words (OCR slips forgiven) and marks them "
            "on the page."
        ),
    )
    if not query.strip():
        return
    matches = search_lines(ocr.lines, query)
    if not matches:
        st.caption(_("No line of the OCR'd text contains “{query}”.").format(query=query))
        return
    st.caption(
        ngettext("{count} matching line for “{query}”", "{count} matching lines for “{query}”", len(matches)).format(
            count=len(matches), query=query
        )
    )
    for answer_page in pages_with_matches(matches):
        page = ocr.document_page(answer_page)
        image = session.page_image(ocr.document_sha256, page)
        if image is not None:
            st.image(
                highlight(image, matches, answer_page),
                caption=_("Page {page}: matches highlighted").format(page=page),
                width="stretch",
            )
    for match in matches[:SHOWN_LINES]:
        st.text(_("p. {page}: {text}").format(page=ocr.document_page(match.page), text=match.text))
