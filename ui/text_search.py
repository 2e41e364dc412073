"""Search in the OCR'd text: type a word, see the matching lines highlighted on the page.

Uses the line boxes of the latest answer that has them (the offline OCR engines return every
line with its box); the search and the drawing are chatvlmllm.documents.search.
"""

from __future__ import annotations

import logging

import streamlit as st

from chatvlmllm.chat.session import ChatSession
from chatvlmllm.documents.search import highlight, latest_ocr_text, pages_with_matches, search_lines

log = logging.getLogger(__name__)

SHOWN_LINES = 20


def render(session: ChatSession) -> None:
    """A search box under the document once an answer with line boxes exists; nothing before."""
    ocr = latest_ocr_text(session.conversation.turns, session.active_document)
    if ocr is None or ocr.document_sha256 not in session.documents:
        return  # nothing read yet, or the page is not here (a chat resumed without its documents)
    query = st.text_input(
        "Search the text",
        key=f"text_search_{session.id}",
        placeholder="e.g. total",
        help="Finds the lines of the OCR'd text that contain these words (OCR slips forgiven) and marks them "
        "on the page.",
    )
    if not query.strip():
        return
    matches = search_lines(ocr.lines, query)
    if not matches:
        st.caption(f"No line of the OCR'd text contains “{query}”.")
        return
    st.caption(f"{len(matches)} matching line(s) for “{query}”")
    for answer_page in pages_with_matches(matches):
        page = ocr.document_page(answer_page)
        image = session.page_image(ocr.document_sha256, page)
        if image is not None:
            st.image(
                highlight(image, matches, answer_page), caption=f"Page {page}: matches highlighted", width="stretch"
            )
    for match in matches[:SHOWN_LINES]:
        st.text(f"p. {ocr.document_page(match.page)}: {match.text}")
