"""Resuming a downloaded chat through AppTest: a JSON transcript says its document is missing and takes it
again; a .zip export comes back with its pages. The answers are real offline OCR answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.archive import to_archive
from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.helpers import image_bytes, text_image

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = image_bytes(text_image(["SHOP 42", "TOTAL 12.50"]))


@pytest.fixture
def fresh():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()
    default_cache().unload()


def open_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    return at


def chat(at: AppTest):
    return at.session_state["chat_session"]


def read_page(at: AppTest) -> None:
    """Upload the page and have the offline engine read it, as a user does."""
    at.main.file_uploader[0].set_value(("receipt.png", PAGE, "image/png")).run()
    at.chat_input[0].set_value(QUICK_PROMPTS["Extract all text"]).run()
    assert not at.exception and "TOTAL" in chat(at).conversation.turns[-1].text


def resume(at: AppTest, name: str, data: bytes) -> None:
    at.sidebar.file_uploader(key="transcript_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception and not at.sidebar.error


def search_boxes(at: AppTest) -> list:
    return [box for box in at.main.text_input if box.key and box.key.startswith("text_search_")]


@pytest.mark.slow
def test_a_json_transcript_says_its_document_was_not_exported_and_takes_it_again(fresh):
    at = open_app()
    read_page(at)
    exported = chat(at).conversation.to_json().encode()  # what the JSON button downloads

    again = open_app()
    resume(again, "chat.json", exported)
    note = [i.value for i in again.main.info if "not part of the export" in i.value]
    assert note == ["receipt.png was not part of the export: upload it again to see the pages and ask more. "
                    "(The .zip export keeps the documents with the chat.)"]  # fmt: skip
    assert any("receipt.png was not part of the export" in t.value for t in again.toast)
    assert not search_boxes(again) and not again.main.image  # no search box over a page that is not here

    again.main.file_uploader[0].set_value(("receipt.png", PAGE, "image/png")).run()  # attached again
    assert not any("not part of the export" in i.value for i in again.main.info)
    assert again.main.image and search_boxes(again)  # the page, and the search over what was read on it


@pytest.mark.slow
def test_a_zip_export_comes_back_with_its_pages(fresh):
    at = open_app()
    read_page(at)
    session = chat(at)
    exported = to_archive(session.conversation, session.documents)  # what the .zip button builds on click

    again = open_app()
    resume(again, "chat.zip", exported)
    resumed = chat(again)
    assert resumed.id != session.id and set(resumed.documents) == set(session.documents)
    assert [t.text for t in resumed.conversation.turns] == [t.text for t in session.conversation.turns]
    assert not any("not part of the export" in i.value for i in again.main.info)
    assert any("with its documents" in t.value for t in again.toast)
    assert again.main.image and search_boxes(again)  # the page is back, and the search over it
    assert set(ChatStore().load(resumed.id).documents) == set(session.documents)  # saved with the chat
    again.chat_input[0].set_value(QUICK_PROMPTS["Extract all text"]).run()  # and the chat goes on about it
    assert not again.exception and "TOTAL" in chat(again).conversation.turns[-1].text


@pytest.mark.slow
def test_a_hostile_archive_is_one_error_and_the_chat_stays(fresh):
    at = open_app()
    read_page(at)
    before = chat(at).id
    at.sidebar.file_uploader(key="transcript_upload").set_value(("evil.zip", b"PK\x03\x04garbage", "application/zip"))
    at.run()
    assert not at.exception
    (error,) = at.sidebar.error
    assert "evil.zip" in error.value and "cannot be read" in error.value
    assert chat(at).id == before and chat(at).document is not None
