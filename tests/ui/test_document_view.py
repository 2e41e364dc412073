"""The document panel (ui/document_view.py) through AppTest: the picker of a chat's documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from tests.helpers import image_bytes, text_image

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def at():
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=90).run()
    assert not app.exception
    yield app
    st.cache_resource.clear()
    default_cache().unload()


def upload(at: AppTest, name: str, lines: list[str]) -> None:
    at.main.file_uploader[0].set_value((name, image_bytes(text_image(lines)), "image/png")).run()
    assert not at.exception


@pytest.mark.slow
def test_the_document_picker_names_pages_and_time_not_a_hash(at):
    upload(at, "image.png", ["FIRST PHOTO"])
    upload(at, "image.png", ["SECOND PHOTO"])  # the same name, from the "Add another document" uploader
    session = at.session_state["chat_session"]
    (picker,) = [box for box in at.main.selectbox if box.label == "Document in use"]
    assert len(picker.options) == 2 and len(set(picker.options)) == 2
    for label in picker.options:
        assert re.fullmatch(r"image\.png · 1 page · added \d\d:\d\d(:\d\d)?( \(\d\))?", label), label
        assert not any(sha[:6] in label for sha in session.documents)
