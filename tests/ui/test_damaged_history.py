"""A damaged chat history file, at start and while the app runs, through AppTest: the messages name the
file and say what to do, once, and nothing already saved is lost (the damaged file is kept aside)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.settings import settings
from tests.helpers import image_bytes, text_image

APP = str(Path(__file__).resolve().parents[2] / "app.py")
DAMAGED = b"this is not a database" * 100


@pytest.fixture
def fresh_process():
    st.cache_resource.clear()  # what a restart does: the store is opened again
    yield
    st.cache_resource.clear()
    default_cache().unload()


def open_app(chat: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if chat:
        at.query_params["chat"] = chat  # a reload, or a link to a chat
    at.run()
    assert not at.exception
    return at


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in [*at.main.warning, *at.sidebar.warning]]


def upload(at: AppTest) -> None:
    at.main.file_uploader[0].set_value(("page.png", image_bytes(text_image(["PAGE"])), "image/png")).run()
    assert not at.exception


def test_a_damaged_file_at_start_is_set_aside_and_the_app_says_where(fresh_process):
    path = settings().database_path
    path.parent.mkdir(parents=True)
    path.write_bytes(DAMAGED)

    at = open_app()
    (said,) = [w for w in warnings(at) if "damaged" in w]
    (aside,) = path.parent.glob(f"{path.name}.damaged-*")
    assert str(path) in said and str(aside) in said and "nothing was deleted" in said
    assert "CHATVLMLLM_DATA_DIR" not in said and ".." not in said and not at.error
    assert aside.read_bytes() == DAMAGED
    upload(at)  # the new history saves
    assert [s.id for s in ChatStore(path).list_sessions()] == [at.session_state["chat_session"].id]
    at.run()
    assert not any("damaged" in w for w in warnings(at))  # said once


def test_a_file_damaged_while_running_is_named_once_and_no_chat_is_called_deleted(fresh_process):
    at = open_app()
    upload(at)
    chat = at.session_state["chat_session"].id
    path = settings().database_path
    for part in path.parent.glob(f"{path.name}*"):
        part.write_bytes(DAMAGED)

    again = open_app(chat)  # the next session, in the same process, on the saved chat
    said = warnings(again)
    assert not any("no longer exists" in w for w in said)
    opened = [w for w in said if "cannot be opened now" in w]
    assert len(opened) == 1 and f"The chat history file {path} is damaged" in opened[0]
    assert "Restart the app" in opened[0]
    assert sum("Saved chats cannot be listed" in w for w in said) == 1  # not twice
    assert again.session_state["chat_session"].id != chat  # a new chat, said so

    at.run()  # the first session goes on with its chat in memory, and hears it once too
    assert sum("Saved chats cannot be listed" in w for w in warnings(at)) == 1
