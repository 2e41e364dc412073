"""The document panel: upload, page picker and a preview of the page(s) in use."""

from __future__ import annotations

import streamlit as st

from chatvlmllm import documents
from chatvlmllm.chat import ChatSession
from chatvlmllm.errors import DocumentError
from ui import state

ALL_PAGES = 0  # the page picker's "All pages" entry
PREVIEW_PAGES = 4  # thumbnails shown when several pages are in use


def render(session: ChatSession) -> None:
    st.subheader("Document")
    # No `type=` filter: Streamlit would raise on a wrong extension before this code runs.
    # documents.load_document sniffs the bytes and explains what is wrong instead.
    uploaded = st.file_uploader(
        "Image (PNG, JPEG, WebP, BMP, TIFF) or PDF",
        key=f"document_upload_{session.id}",  # a fresh uploader per chat
        max_upload_size=max(1, int(documents.MAX_UPLOAD_MB)),
    )
    doc = state.handle_upload(
        uploaded, f"document_{session.id}", lambda f: documents.load_document(f.getvalue(), f.name)
    )
    if doc is not None:
        session.attach(doc)
    _document_picker(session)
    _page_picker(session)
    _preview(session)


def _document_picker(session: ChatSession) -> None:
    """Earlier documents of this chat stay available."""
    if len(session.documents) < 2:
        return
    shas = list(session.documents)
    chosen = st.selectbox(
        "Document in use",
        shas,
        index=shas.index(session.active_document) if session.active_document in shas else 0,
        format_func=lambda sha: session.documents[sha].name,
        key=state.widget_key("document_picker", session.id, shas),  # new options, new widget
    )
    if chosen != session.active_document:
        session.attach(session.documents[chosen])


def _page_picker(session: ChatSession) -> None:
    doc = session.document
    if doc is None or doc.page_count < 2:
        return
    choices = [*range(1, doc.page_count + 1), ALL_PAGES]
    current = ALL_PAGES if len(session.pages) == doc.page_count else session.pages[0]
    choice = st.selectbox(
        f"Page ({doc.page_count} in this {doc.kind})",
        choices,
        index=choices.index(current) if current in choices else 0,
        format_func=lambda p: "All pages" if p == ALL_PAGES else f"Page {p}",
        key=f"page_picker_{session.id}_{doc.sha256[:12]}",
    )
    pages = list(range(1, doc.page_count + 1)) if choice == ALL_PAGES else [choice]
    session.select_pages(pages)
    if choice == ALL_PAGES and doc.page_count > PREVIEW_PAGES:
        st.caption(f"All {doc.page_count} pages go to the model: slower, and large documents may not fit.")


def _preview(session: ChatSession) -> None:
    doc = session.document
    if doc is None:
        st.info("Upload a document to ask about it, or just chat.")
        return
    try:
        if len(session.pages) == 1:
            page = session.pages[0]
            st.image(doc.page(page - 1), caption=f"{doc.name} — page {page} of {doc.page_count}", width="stretch")
            return
        shown = session.pages[:PREVIEW_PAGES]
        st.image(
            [doc.page(p - 1) for p in shown],
            caption=[f"page {p}" for p in shown],
            width=140,
        )
        st.caption(f"{doc.name}: {len(session.pages)} pages in use")
    except DocumentError as exc:
        st.error(str(exc))
