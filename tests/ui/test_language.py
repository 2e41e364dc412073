"""The interface language in the app (ui.language) through AppTest: the browser's language by default, the
sidebar switch, CHATVLMLLM_UI_LANG, the document language that follows, and the first translated slice
of the Chat page checked with the visible-text walker (tests/helpers.py: shown_texts, english_texts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.i18n import translate
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.helpers import english_texts, english_words, image_bytes, shown_texts, text_image, write_models_file
from ui.language import CHOSEN_KEY, SWITCH_KEY

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
SWITCH = SWITCH_KEY
# The Chat page's parts translated so far (the later sweep removes this filter): the language switch, the
# uploader and the document heading, the quick prompts, the empty state and the chat input.
SLICE_KINDS = frozenset({"subheader", "file_uploader", "caption", "markdown"})


@pytest.fixture
def vlm_env(tmp_path, monkeypatch, tiny_qwen2_vl):
    """A vision-language model ready here (no set-up badge on the page)."""
    models = write_models_file(tmp_path / "models.toml", {"tiny2": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    monkeypatch.setenv("CHATVLMLLM_DEFAULT_MODEL", "tiny2")
    _fresh_process()
    yield tmp_path
    _fresh_process()


@pytest.fixture
def ocr_env(tmp_path, monkeypatch):
    """No model but the offline OCR engine."""
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "none.toml"))
    _fresh_process()
    yield tmp_path
    _fresh_process()


def _fresh_process() -> None:
    st.cache_resource.clear()
    default_cache().unload()


def open_app(locale: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if locale is not None:
        at.context = {"locale": locale}
    at.run()
    assert not at.exception
    return at


def quick_buttons(at: AppTest) -> dict[str, tuple[str, str]]:
    return {b.key: (b.label, b.help) for b in at.main.button if b.key and b.key.startswith("quick_")}


def switch_to(at: AppTest, language: str) -> AppTest:
    at.sidebar.selectbox(key=SWITCH).set_value(language).run()
    assert not at.exception
    return at


def test_a_russian_browser_reads_the_chat_page_in_russian(vlm_env):
    at = open_app("ru-RU")
    main = shown_texts(at.main)
    assert english_texts(main) == []  # the whole Chat page before the first question (no badge with a model)
    assert {shown.kind for shown in main} >= {"subheader", "file_uploader", "caption", "markdown", "button"}
    assert at.chat_input(key="question").placeholder == "Спросите что угодно или сначала загрузите документ…"
    assert quick_buttons(at)["quick_table_markdown"] == (
        "Таблица → Markdown",
        translate(QUICK_PROMPTS["Table → Markdown"], "ru"),
    )
    switch = at.sidebar.selectbox(key=SWITCH)
    assert switch.label == "Язык" and switch.value == "ru" and switch.options == ["English", "Русский"]
    assert english_texts(shown_texts(at.sidebar)) == []  # the sidebar too (its model picker, the chat page's parts)
    assert at.session_state["language"] == "ru"  # the document language followed


@pytest.mark.slow
def test_an_english_or_unknown_browser_reads_english(vlm_env):
    for locale in ("en-US", "de-DE", None):
        at = open_app(locale)
        assert at.chat_input(key="question").placeholder == "Ask anything, or upload a document first…"
        assert quick_buttons(at)["quick_summarise"][0] == "Summarise"
        assert at.sidebar.selectbox(key=SWITCH).value == "en" and at.session_state["language"] == "auto"
        # The walker finds the English slice: what it reports on a Russian page is really there to find.
        slice_texts = [shown for shown in shown_texts(at.main) if shown.kind in SLICE_KINDS]
        assert len(english_texts(slice_texts)) == len(slice_texts) >= 4


def test_the_offline_engines_slice_reads_russian(ocr_env):
    at = open_app("ru-RU")
    slice_texts = [shown for shown in shown_texts(at.main) if "ocr_only_badge" not in shown.within]
    assert english_texts(slice_texts) == []
    assert quick_buttons(at) == {  # what an OCR-only engine can honestly do, in Russian
        "quick_extract_text": ("Извлечь текст", translate(QUICK_PROMPTS["Extract all text"], "ru")),
        "quick_table_markdown": ("Таблица → Markdown", translate(QUICK_PROMPTS["Table → Markdown"], "ru")),
        "quick_key_fields_json": ("Ключевые поля → JSON", translate(QUICK_PROMPTS["Key fields → JSON"], "ru")),
    }
    assert at.chat_input(key="question").placeholder.startswith("Сначала загрузите документ")


def test_the_switch_changes_the_language_and_the_document_language_follows(vlm_env):
    at = open_app("ru-RU")
    switch_to(at, "en")
    assert at.chat_input(key="question").placeholder == "Ask anything, or upload a document first…"
    assert at.session_state[CHOSEN_KEY] == "en" and at.session_state["language"] == "auto"
    assert at.sidebar.selectbox(key=SWITCH).label == "Language"
    switch_to(at, "ru")
    assert at.session_state["language"] == "ru" and english_texts(shown_texts(at.main)) == []


def test_a_document_language_the_user_chose_stays(vlm_env):
    at = open_app("ru-RU")
    at.sidebar.selectbox(key="language").set_value("en").run()  # the page says otherwise
    switch_to(at, "en")
    assert at.session_state["language"] == "en"
    switch_to(at, "ru")
    assert at.session_state["language"] == "en"


def test_the_environment_forces_the_language(vlm_env, monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_UI_LANG", "ru")
    at = open_app("en-US")
    assert at.chat_input(key="question").placeholder.startswith("Спросите")
    switch = at.sidebar.selectbox(key=SWITCH)
    assert switch.disabled and switch.value == "ru" and "CHATVLMLLM_UI_LANG" in switch.help


def test_a_forced_language_the_app_does_not_speak_is_said_and_the_browsers_is_used(vlm_env, monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_UI_LANG", "klingon")
    at = open_app("ru-RU")
    assert "CHATVLMLLM_UI_LANG='klingon' is not a language of this app" in at.error[0].value
    assert at.chat_input(key="question").placeholder.startswith("Спросите")


def test_widget_callbacks_speak_the_sessions_language():
    # Streamlit runs a callback on a fresh thread before the page script, where no language was set yet:
    # ui.language gives i18n the session's language for it (AppTest runs each run on a new thread too).
    def script():
        import streamlit as st

        from chatvlmllm.i18n import _
        from ui import language

        def clicked():
            st.session_state["said"] = _("Document")

        language.apply()
        st.button("go", key="go", on_click=clicked)

    at = AppTest.from_function(script, default_timeout=30)
    at.context = {"locale": "ru-RU"}
    at.run()
    at.button(key="go").click().run()
    assert not at.exception and at.session_state["said"] == "Документ"


@pytest.mark.slow  # reads a page with the offline OCR engine
def test_a_russian_quick_prompt_is_understood_and_names_the_chat(ocr_env):
    at = open_app("ru-RU")
    image = image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"]))
    at.main.file_uploader[0].set_value(("invoice.png", image, "image/png")).run()
    at.main.button(key="quick_extract_text").click().run()
    assert not at.exception
    session = at.session_state["chat_session"]
    question, answer = session.conversation.turns
    assert question.text == translate(QUICK_PROMPTS["Extract all text"], "ru")  # sent in Russian
    assert answer.model == "ocr_auto" and "TOTAL" in answer.text  # read as a transcription
    assert session.conversation.title == "invoice.png — Извлечь весь текст"
    assert english_words(at.chat_input(key="question").placeholder) == []
    at.sidebar.button(key="new_chat").click().run()  # the empty state offers the way back, dated in Russian
    back = at.main.button(key="continue_last_chat").label
    assert back.startswith("Продолжить последний чат: invoice.png — Извлечь весь текст · ")
    assert english_words(back) == [] and re.search(r"\d+ [а-я]+\.?, \d\d:\d\d$", back)
