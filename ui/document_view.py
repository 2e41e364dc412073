"""The document panel: upload, what questions cover (the whole document, or a page), the background reading,
and a large preview that stays in view while reading (or the page a citation chip opened)."""

from __future__ import annotations

import logging

import streamlit as st

from chatvlmllm.chat.archive import missing_documents, missing_note
from chatvlmllm.chat.conversation import DEFAULT_TITLE, QuestionScope
from chatvlmllm.chat.document_labels import document_labels
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.chat.store import StoreError
from chatvlmllm.documents import loading as documents
from chatvlmllm.i18n import _, format_number, format_size, ngettext
from chatvlmllm.settings import settings
from ui import citations, reading_status, state
from ui.language import PAGE_PICKER
from ui.sidebar import in_this_language

log = logging.getLogger(__name__)

ALL_PAGES = 0  # the page picker's "All pages" entry
WHOLE_DOCUMENT = -1  # its "Whole document" entry: questions cover every document of the chat (the default)
PREVIEW_PAGES = 6  # pages shown when several are in use
THUMBNAILS_PER_ROW = 2


def upload_limits() -> str:
    size = format_size(settings().max_upload_mb * 1_000_000)
    pages = ngettext("PDFs up to {count} page.", "PDFs up to {count} pages.", documents.MAX_PAGES)
    return _("Images (PNG, JPEG, WebP, BMP, TIFF) or PDF, up to {size}; {pages_limit}").format(
        size=size, pages_limit=pages.format(count=format_number(documents.MAX_PAGES))
    )


def render(session: ChatSession, language: str | None = None) -> None:
    note = st.empty()  # filled after the uploader: a document attached in this run is no longer missing
    has_document = session.document is not None
    if has_document:
        with st.expander(_("Add another document"), icon=":material/upload_file:"):
            _uploader(session)
    else:
        st.subheader(_("Document"))
        _uploader(session)
    missing = missing_documents(session.conversation, session.documents)
    if missing:  # a resumed chat whose pages did not come with it: say so where they would be
        note.info(missing_note(missing), icon=":material/attach_file:")
    try:
        _document_picker(session)
        _page_picker(session)
        reading_status.render(session, language)
        _preview(session)
    except Exception as exc:  # a page that cannot be drawn must not take the chat with it
        log.exception("document preview failed")
        st.warning(
            _("This document cannot be shown ({error}). The chat still works.").format(
                error=f"{type(exc).__name__}: {exc}"
            )
        )


def _uploader(session: ChatSession) -> None:
    # No `type=` filter: Streamlit would raise on a wrong extension before this code runs.
    # documents.load_document sniffs the bytes and explains what is wrong instead.
    uploaded = st.file_uploader(
        _("Upload a document"),
        key=f"document_upload_{session.id}",  # a fresh uploader per chat
        max_upload_size=max(1, int(settings().max_upload_mb)),
    )
    st.caption(upload_limits())  # visible, not only a tooltip
    doc = state.handle_upload(
        uploaded, f"document_{session.id}", lambda f: documents.load_document(f.getvalue(), f.name)
    )
    if doc is None:
        return
    try:
        session.attach(doc)
        if not session.conversation.turns and session.conversation.title == DEFAULT_TITLE:
            session.rename(doc.name)  # the chat list names it after its document
    except StoreError as exc:  # the document is in use in this session, only not saved
        st.warning(
            _("{error} {name} is not saved with the chat; it stays here until you close the tab.").format(
                error=exc, name=doc.name
            )
        )


def _document_picker(session: ChatSession) -> None:
    """Earlier documents of this chat stay available (labels unique: two files may share a name)."""
    if len(session.documents) < 2:
        return
    shas = list(session.documents)
    labels = document_labels(session.documents, session.added)
    chosen = st.selectbox(
        _("Document in use"),
        shas,
        index=shas.index(session.active_document) if session.active_document in shas else 0,
        format_func=labels.__getitem__,
        key=state.widget_key("document_picker", session.id, shas),  # new options, new widget
    )
    if chosen != session.active_document:
        session.attach(session.documents[chosen])


def _page_picker(session: ChatSession) -> None:
    """What the next question covers: the whole document (every document of the chat, through the pages read),
    one page, or every page's image ("All pages")."""
    doc = session.document
    if doc is None or session.page_count < 2:
        return
    several_pages = doc.page_count > 1
    choices = [WHOLE_DOCUMENT, *range(1, doc.page_count + 1), *([ALL_PAGES] if several_pages else [])]
    if session.whole_documents:
        current = WHOLE_DOCUMENT
    else:
        current = ALL_PAGES if several_pages and len(session.pages) == doc.page_count else session.pages[0]
    whole = _("Whole document") if len(session.documents) < 2 else _("Every document of this chat")
    key = f"{PAGE_PICKER}_{session.id}_{doc.sha256[:12]}"
    if st.session_state.get(key) not in choices:
        # Its first choice, through its value rather than `index=`: the language switch sets the value again
        # (ui.language), and a widget with both makes Streamlit log a warning.
        st.session_state[key] = current if current in choices else WHOLE_DOCUMENT
    choice = st.selectbox(
        _page_count_label(doc.page_count, doc.kind),
        choices,
        format_func=in_this_language(lambda p: _page_choice(int(p), whole)),  # its values are page numbers
        key=key,
        help=_("Whole document: a question is answered from the passages that match it, on any page, with the "
               "pages cited. A page: the question goes with that page's image."),
    )  # fmt: skip
    if choice == WHOLE_DOCUMENT:
        session.select_scope(QuestionScope.DOCUMENTS)
        return
    session.select_scope(QuestionScope.PAGES)
    pages = list(range(1, doc.page_count + 1)) if choice == ALL_PAGES else [choice]
    try:
        session.select_pages(pages)
    except StoreError as exc:
        st.warning(_("{error} The page choice is not saved.").format(error=exc))
    if choice == ALL_PAGES and doc.page_count > PREVIEW_PAGES:
        st.caption(
            ngettext(
                "All {count} page goes to the model: slower, and large documents may not fit.",
                "All {count} pages go to the model: slower, and large documents may not fit.",
                doc.page_count,
            ).format(count=format_number(doc.page_count))
        )


def _page_count_label(count: int, kind: str) -> str:
    """ "Page (3 in this PDF)": the picker's label, the count in the right plural form."""
    if kind == documents.DocumentKind.PDF:
        label = ngettext("Page ({count} in this PDF)", "Page ({count} in this PDF)", count)
    else:
        label = ngettext("Page ({count} in this image)", "Page ({count} in this image)", count)
    return label.format(count=format_number(count))


def _page_choice(page: int, whole: str) -> str:
    if page == WHOLE_DOCUMENT:
        return whole
    return _("All pages") if page == ALL_PAGES else _("Page {page}").format(page=page)


def _preview(session: ChatSession) -> None:
    doc = session.document
    if doc is None:
        return
    with st.container(key="document_preview"):  # its column stays in view beside the chat (ui.style)
        if citations.render_open(session):  # a citation chip opened its page
            return
        if len(session.pages) == 1:
            page = session.pages[0]
            caption = _("{name} — page {page} of {count}").format(name=doc.name, page=page, count=doc.page_count)
            st.image(doc.page(page - 1), caption=caption, width="stretch")
            return
        shown = session.pages[:PREVIEW_PAGES]
        in_use = len(session.pages)
        st.caption(
            ngettext("{name}: {count} page in use", "{name}: {count} pages in use", in_use).format(
                name=doc.name, count=format_number(in_use)
            )
        )
        for start in range(0, len(shown), THUMBNAILS_PER_ROW):
            row = shown[start : start + THUMBNAILS_PER_ROW]
            for column, page in zip(st.columns(THUMBNAILS_PER_ROW), row, strict=False):
                with column:
                    st.image(doc.page(page - 1), caption=_("Page {page}").format(page=page), width="stretch")
